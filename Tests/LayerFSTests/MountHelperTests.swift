// The mount(8) helper, mount-helpers/mount.layerfs: called directly the way mount(8) calls it, and
// through the real mount(8), with `-t fuse.layerfs` and with an fstab line.
//
// The helper is the script in the repository (found from #filePath); it finds the layerfs binary
// through $LAYERFS, set here to LayerFSBinary.path. Every mount is torn down by `withHelperMount`,
// also when the test fails: fusermount3 -u (retried while busy), then umount -l, then the detached
// daemon is waited for (SIGKILL after 5 s). The mount(8) tests install the helper as
// /sbin/mount.fuse.layerfs only when nothing is there, and always remove it afterwards.

import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// mount-helpers/mount.layerfs in this repository.
private let helperScript: String = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("mount-helpers/mount.layerfs").path

/// Where mount(8) looks first for the helper of type fuse.layerfs.
private let installedHelper = "/sbin/mount.fuse.layerfs"

/// Runs a program with LAYERFS set to the built binary; returns (status, stdout + stderr).
private func runWithLayerFS(_ program: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: program)
    process.arguments = arguments
    let binary = try #require(LayerFSBinary.path)
    var environment = ProcessInfo.processInfo.environment
    environment["LAYERFS"] = binary
    process.environment = environment
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    process.standardInput = FileHandle.nullDevice
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// The /proc/mounts entry whose mount point is `path`: (source, type).
private func mountEntry(at path: String) -> (source: String, type: String)? {
    guard let text = try? String(contentsOfFile: "/proc/mounts", encoding: .utf8) else { return nil }
    for line in text.split(separator: "\n") {
        let fields = line.split(separator: " ")
        if fields.count > 2, fields[1] == path { return (String(fields[0]), String(fields[2])) }
    }
    return nil
}

/// Processes whose command line is `… mount … mountPoint …`: the daemon a helper left serving it.
private func daemons(servingMountPoint mountPoint: String) -> [Int32] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap { entry -> Int32? in
        guard let pid = Int32(entry), pid != getpid(),
            let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline")
        else { return nil }
        let arguments = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        return arguments.contains("mount") && arguments.contains(mountPoint) ? pid : nil
    }
}

/// Runs `body`, then ALWAYS makes sure nothing is left mounted on `mountPoint` and the daemon has
/// exited. A mount or daemon that had to be forced away fails the test.
private func withHelperMount<T>(on mountPoint: String, _ body: () throws -> T) throws -> T {
    let result = Result { try body() }
    var problems: [String] = []
    if isMounted(mountPoint) {
        problems.append("\(mountPoint) was still mounted after the test")
        var attempts = 0
        while isMounted(mountPoint) && attempts < 50 {
            _ = try? runProgram(findExecutable("fusermount3") ?? "/usr/bin/fusermount3", ["-u", mountPoint])
            if isMounted(mountPoint) { usleep(100_000) }
            attempts += 1
        }
        if isMounted(mountPoint) {
            problems.append("fusermount3 -u failed 50 times; lazy unmount")
            _ = try? runProgram(findExecutable("umount") ?? "/bin/umount", ["-l", mountPoint])
        }
    }
    let deadline = Date().addingTimeInterval(5)
    while !daemons(servingMountPoint: mountPoint).isEmpty && Date() < deadline { usleep(20_000) }
    let left = daemons(servingMountPoint: mountPoint)
    if !left.isEmpty {
        problems.append("the layerfs daemon (pid \(left)) did not exit after the unmount; killed")
        for pid in left { kill(pid, SIGKILL) }
    }
    if isMounted(mountPoint) { problems.append("\(mountPoint) is still mounted") }
    if !problems.isEmpty {
        let error = FixtureError(problems.joined(separator: "; "))
        if case .failure = result { Issue.record(error) } else { throw error }
    }
    return try result.get()
}

/// A scratch directory with a store made by `layerfs init` and an empty mount point.
private func withInitializedStore<T>(_ body: (_ store: String, _ mountPoint: String) throws -> T) throws -> T {
    try withScratchDirectory { dir in
        let store = dir + "/store"
        let mountPoint = dir + "/mnt"
        let created = try runProgram(try #require(LayerFSBinary.path), ["init", store])
        try #require(created.status == 0, "layerfs init: \(created.output)")
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: false)
        return try body(store, mountPoint)
    }
}

/// Checks that `mountPoint` serves `store` as fuse.layerfs with @time (listed: show_at), unmounts
/// it with umount(8), and checks that it is gone.
private func checkMountedThenUmount(store: String, mountPoint: String) throws {
    let entry = try #require(mountEntry(at: mountPoint), "\(mountPoint) is not in /proc/mounts")
    #expect(entry.type == "fuse.layerfs")
    #expect(entry.source == store)
    let times = try FS.list(mountPoint + "/@time")
    #expect(times.contains("latest"), "\(times)")
    #expect(times.count >= 2, "layerfs init's event and latest: \(times)")
    #expect(try FS.list(mountPoint).contains("@time"), "show_at reached layerfs")
    let umount = try runProgram(try #require(findExecutable("umount")), [mountPoint])
    #expect(umount.status == 0, "umount: \(umount.output)")
    #expect(!isMounted(mountPoint))
}

/// Installs the repository's helper as /sbin/mount.fuse.layerfs for `body` (refusing to replace
/// anything there) and removes it afterwards, whatever happens.
private func withInstalledHelper<T>(_ body: () throws -> T) throws -> T {
    let script = try #require(FileManager.default.contents(atPath: helperScript), "cannot read \(helperScript)")
    let fd = open(installedHelper, O_WRONLY | O_CREAT | O_EXCL, 0o755)
    try #require(fd >= 0, "cannot create \(installedHelper): errno \(errno)")
    defer { unlink(installedHelper) }
    let written = script.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    close(fd)
    try #require(written == script.count, "short write to \(installedHelper)")
    chmod(installedHelper, 0o755)
    return try body()
}

/// The helper's argument handling, without mounting anything: -f (mount(8)'s "fake") with -v
/// prints the layerfs command it would run.
@Suite(.enabled(if: LayerFSBinary.path != nil, "the layerfs executable was not found"))
struct MountHelperArgumentTests {
    @Test func mountOnlyOptionsAreDroppedAndTheRestPassedOn() throws {
        let fake = try runWithLayerFS(
            helperScript,
            [
                "/srv/layer", "/mnt/layer", "-f", "-n", "-s", "-v", "-o",
                "defaults,rw,show_at,nofail,noauto,_netdev,user,users,x-systemd.automount,X-mount.mkdir,comment=x,allow_other",
                "-t", "fuse.layerfs",
            ])
        #expect(fake.status == 0, "\(fake.output)")
        #expect(
            fake.output.hasSuffix(" mount /srv/layer /mnt/layer -o show_at,allow_other,rw\n"),
            "\(fake.output)")
        #expect(!isMounted("/mnt/layer"))

        let readOnly = try runWithLayerFS(helperScript, ["/srv/layer", "/mnt/layer", "-f", "-v", "-o", "rw,defaults", "-o", "ro"])
        #expect(readOnly.output.hasSuffix(" mount /srv/layer /mnt/layer -o ro\n"), "\(readOnly.output)")

        let nothing = try runWithLayerFS(helperScript, ["/srv/layer", "/mnt/layer", "-f", "-v", "-o", "defaults,nofail"])
        #expect(nothing.output.hasSuffix(" mount /srv/layer /mnt/layer\n"), "\(nothing.output)")
    }

    @Test func badInvocationsExit1AndMountFailuresExit32WithLayerFSMessage() throws {
        let missing = try runWithLayerFS(helperScript, ["/srv/layer"])
        #expect(missing.status == 1)
        #expect(missing.output.contains("expected a store and a mount point"), "\(missing.output)")
        let otherType = try runWithLayerFS(helperScript, ["/srv/layer", "/mnt/layer", "-t", "ext4"])
        #expect(otherType.status == 1)
        try withScratchDirectory { dir in
            try FileManager.default.createDirectory(atPath: dir + "/mnt", withIntermediateDirectories: false)
            let noStore = try runWithLayerFS(helperScript, [dir + "/nostore", dir + "/mnt", "-o", "rw"])
            #expect(noStore.status == 32)
            #expect(noStore.output.contains("not a layerfs store"), "\(noStore.output)")
            #expect(!isMounted(dir + "/mnt"))
        }
    }
}

/// Real mounts through the helper (root, /dev/fuse, mount and umount).
@Suite(
    .serialized,
    .enabled(if: fuseUnavailableReason == nil, "real mounts: \(fuseUnavailableReason ?? "")"),
    .enabled(if: findExecutable("mount") != nil && findExecutable("umount") != nil, "mount(8) and umount(8) are needed"))
struct MountHelperMountTests {
    /// mount(8) runs `mount.fuse.layerfs SOURCE DIR -o OPTIONS`: do exactly that.
    @Test func calledLikeMountItMountsAndUmountUnmounts() throws {
        try withInitializedStore { store, mountPoint in
            try withHelperMount(on: mountPoint) {
                let mounted = try runWithLayerFS(helperScript, [store, mountPoint, "-o", "rw,show_at,noindex"])
                try #require(mounted.status == 0, "mount.layerfs: \(mounted.output)")
                #expect(mounted.output == "", "quiet on success")
                try checkMountedThenUmount(store: store, mountPoint: mountPoint)
            }
        }
    }

    @Test(.enabled(if: !FileManager.default.fileExists(atPath: installedHelper), "\(installedHelper) is already installed"))
    func mountTypeFuseLayerfsUsesTheInstalledHelper() throws {
        try withInstalledHelper {
            try withInitializedStore { store, mountPoint in
                try withHelperMount(on: mountPoint) {
                    let mount = try runWithLayerFS(
                        try #require(findExecutable("mount")), ["-t", "fuse.layerfs", "-o", "show_at,noindex", store, mountPoint])
                    try #require(mount.status == 0, "mount -t fuse.layerfs: \(mount.output)")
                    try checkMountedThenUmount(store: store, mountPoint: mountPoint)
                }
            }
        }
        #expect(!FileManager.default.fileExists(atPath: installedHelper))
    }

    @Test(.enabled(if: !FileManager.default.fileExists(atPath: installedHelper), "\(installedHelper) is already installed"))
    func anFstabLineMountsThroughTheInstalledHelper() throws {
        try withInstalledHelper {
            try withInitializedStore { store, mountPoint in
                // mount -T reads this file instead of /etc/fstab.
                let fstab = (mountPoint as NSString).deletingLastPathComponent + "/fstab"
                try "\(store) \(mountPoint) fuse.layerfs defaults,show_at,noindex,nofail 0 0\n"
                    .write(toFile: fstab, atomically: true, encoding: .utf8)
                try withHelperMount(on: mountPoint) {
                    let mount = try runWithLayerFS(try #require(findExecutable("mount")), ["-T", fstab, mountPoint])
                    try #require(mount.status == 0, "mount -T fstab: \(mount.output)")
                    try checkMountedThenUmount(store: store, mountPoint: mountPoint)
                }
            }
        }
        #expect(!FileManager.default.fileExists(atPath: installedHelper))
    }
}
