import Foundation
import Testing

@testable import LayerCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// These tests mount a real btrfs image through a loop device, so they need root, loop devices and
// btrfs-progs (see `loopBtrfsUnavailableReason`). Where those are missing they are skipped, not
// failed; on the project's build machine all of them are present and the tests run. Serialized:
// each test mounts its own filesystem, and the teardown checks are easier to read one at a time.
@Suite(
    .serialized,
    .enabled(
        if: loopBtrfsUnavailableReason == nil,
        "needs root, /dev/loop-control, mkfs.btrfs and losetup: see loopBtrfsUnavailableReason"))
struct BtrfsTests {
    @Test func detectsBtrfs() throws {
        // `throws` spelled out: a closure whose only `try`s sit inside #expect is not inferred
        // as throwing.
        try withLoopBtrfs { mount throws in
            #expect(try Btrfs.isBtrfs(mount))
            #expect(try !Btrfs.isBtrfs("/tmp"))
        }
    }

    @Test func isBtrfsThrowsForAMissingPath() throws {
        let error = try #require(throws: LayerError.self) {
            try Btrfs.isBtrfs("/nonexistent/layerfs-btrfs-test")
        }
        #expect(error.code == .notFound)
        #expect(error.path == "/nonexistent/layerfs-btrfs-test")
    }

    @Test func createsSubvolumes() throws {
        try withLoopBtrfs { mount in
            let subvolume = mount + "/store"
            let plain = mount + "/plain"
            try FileManager.default.createDirectory(
                atPath: plain, withIntermediateDirectories: false)

            try Btrfs.createSubvolume(at: subvolume)

            #expect(try Btrfs.isSubvolume(subvolume))
            #expect(try Btrfs.isSubvolume(mount), "the top level of a btrfs is subvolume 5")
            #expect(try !Btrfs.isSubvolume(plain))
            #expect(try !Btrfs.isSubvolume("/tmp"), "not btrfs at all gives false, not an error")
            #expect(try !Btrfs.isReadOnly(subvolume))
        }
    }

    @Test func isSubvolumeThrowsForAMissingPath() throws {
        try withLoopBtrfs { mount in
            let missing = mount + "/missing"
            let error = try #require(throws: LayerError.self) { try Btrfs.isSubvolume(missing) }
            #expect(error.code == .notFound)
            #expect(error.path == missing)
            #expect(error.message.contains("btrfs_util_is_subvolume"))
        }
    }

    @Test func createSubvolumeOverAnExistingNameFails() throws {
        try withLoopBtrfs { mount in
            let subvolume = mount + "/store"
            try Btrfs.createSubvolume(at: subvolume)
            let error = try #require(throws: LayerError.self) {
                try Btrfs.createSubvolume(at: subvolume)
            }
            #expect(error.code == .alreadyExists)
            #expect(error.errno == EEXIST)
            #expect(error.path == subvolume)
            #expect(error.message.contains("btrfs_util_create_subvolume"))
        }
    }

    @Test func readOnlySnapshotKeepsContentAndRefusesWrites() throws {
        try withLoopBtrfs { mount in
            let store = mount + "/store"
            let snapshots = mount + "/snapshots"
            let snapshot = snapshots + "/block-1"
            try Btrfs.createSubvolume(at: store)
            try FileManager.default.createDirectory(
                atPath: snapshots, withIntermediateDirectories: false)
            try "first\n".write(toFile: store + "/events.jsonl", atomically: false, encoding: .utf8)

            try Btrfs.createReadOnlySnapshot(of: store, at: snapshot)

            // Changing the source afterwards does not change the snapshot.
            try "second\n".write(
                toFile: store + "/events.jsonl", atomically: false, encoding: .utf8)
            #expect(
                try String(contentsOfFile: snapshot + "/events.jsonl", encoding: .utf8) == "first\n"
            )
            #expect(try Btrfs.isSubvolume(snapshot))
            #expect(try Btrfs.isReadOnly(snapshot))
            #expect(try !Btrfs.isReadOnly(store))

            #expect(openForWriting(snapshot + "/events.jsonl") == EROFS)
            #expect(openForWriting(snapshot + "/new-file", create: true) == EROFS)
        }
    }

    @Test func snapshotOfAPlainDirectoryNamesThePath() throws {
        try withLoopBtrfs { mount in
            let plain = mount + "/plain"
            try FileManager.default.createDirectory(
                atPath: plain, withIntermediateDirectories: false)
            let error = try #require(throws: LayerError.self) {
                try Btrfs.createReadOnlySnapshot(of: plain, at: mount + "/snap")
            }
            #expect(error.path == plain)
            #expect(error.message.contains(plain))
            #expect(error.description.contains(plain))
            #expect(!FileManager.default.fileExists(atPath: mount + "/snap"))
        }
    }

    @Test func snapshotIntoAMissingDirectoryFails() throws {
        try withLoopBtrfs { mount in
            let store = mount + "/store"
            let target = mount + "/no-such-dir/snap"
            try Btrfs.createSubvolume(at: store)
            let error = try #require(throws: LayerError.self) {
                try Btrfs.createReadOnlySnapshot(of: store, at: target)
            }
            #expect(error.code == .notFound)
            #expect(error.path == target)
            #expect(error.message.contains("btrfs_util_create_snapshot"))
            #expect(error.message.contains(store))
        }
    }

    @Test func isReadOnlyOfAPlainDirectoryThrows() throws {
        try withLoopBtrfs { mount in
            let plain = mount + "/plain"
            try FileManager.default.createDirectory(
                atPath: plain, withIntermediateDirectories: false)
            let error = try #require(throws: LayerError.self) { try Btrfs.isReadOnly(plain) }
            #expect(error.path == plain)
            #expect(error.message.contains("btrfs_util_get_subvolume_read_only"))
        }
    }

    @Test func deletesSubvolumesAndSnapshots() throws {
        try withLoopBtrfs { mount in
            let store = mount + "/store"
            let snapshot = mount + "/snap"
            try Btrfs.createSubvolume(at: store)
            try "data".write(toFile: store + "/file", atomically: false, encoding: .utf8)
            try Btrfs.createReadOnlySnapshot(of: store, at: snapshot)

            try Btrfs.deleteSubvolume(at: snapshot)
            try Btrfs.deleteSubvolume(at: store)

            #expect(!FileManager.default.fileExists(atPath: snapshot))
            #expect(!FileManager.default.fileExists(atPath: store))
            let error = try #require(throws: LayerError.self) {
                try Btrfs.deleteSubvolume(at: store)
            }
            #expect(error.code == .notFound)
            #expect(error.path == store)
            #expect(error.message.contains("btrfs_util_delete_subvolume"))
        }
    }

    // MARK: - The harness itself

    @Test func harnessLeavesNothingBehindAfterReturning() throws {
        let (mount, device) = try withLoopBtrfs { mount in
            #expect(try currentMountPoints().contains(mount))
            let devices = try loopDevices(backing: image(of: mount))
            #expect(devices.count == 1)
            return (mount, devices.first ?? "")
        }
        try expectGone(mount: mount, device: device)
    }

    @Test func harnessLeavesNothingBehindAfterAThrow() throws {
        struct Boom: Error {}
        var seen: (mount: String, device: String)?
        #expect(throws: Boom.self) {
            try withLoopBtrfs { mount in
                seen = (mount, try loopDevices(backing: image(of: mount)).first ?? "")
                throw Boom()
            }
        }
        let (mount, device) = try #require(seen)
        try expectGone(mount: mount, device: device)
    }

    @Test func harnessRetriesWhileTheMountIsBusy() throws {
        // Keep a file open on the filesystem for a moment after the body returns: the first
        // unmount attempts fail with EBUSY and the harness must retry until it succeeds.
        let (mount, device) = try withLoopBtrfs { mount in
            let fd = open(mount + "/busy", O_CREAT | O_WRONLY | O_CLOEXEC, 0o644)
            #expect(fd >= 0)
            Thread.detachNewThread {
                usleep(800_000)
                close(fd)
            }
            return (mount, try loopDevices(backing: image(of: mount)).first ?? "")
        }
        try expectGone(mount: mount, device: device)
    }

    @Test func asyncHarnessLeavesNothingBehind() async throws {
        let mount = try await withLoopBtrfs { mount async throws in
            await Task.yield()
            #expect(try Btrfs.isBtrfs(mount))
            return mount
        }
        try expectGone(mount: mount, device: nil)
    }
}

/// The image file of a fixture, by the layout documented in LoopBtrfs.swift.
private func image(of mount: String) -> String {
    (mount as NSString).deletingLastPathComponent + "/btrfs.img"
}

/// Checks that nothing of a finished fixture is left: no mount, no loop device on its image,
/// no temp dir.
private func expectGone(mount: String, device: String?) throws {
    let directory = (mount as NSString).deletingLastPathComponent
    #expect(try !currentMountPoints().contains(mount))
    #expect(!FileManager.default.fileExists(atPath: directory))
    let attached = try ExternalCommand.run("losetup", ["-a"])
    #expect(!attached.contains(directory), "a loop device still uses the image: \(attached)")
    if let device, !device.isEmpty {
        let name = (device as NSString).lastPathComponent
        let backing = try? String(
            contentsOfFile: "/sys/block/\(name)/loop/backing_file", encoding: .utf8)
        #expect(
            backing.map { !$0.contains(directory) } ?? true, "\(device) still backed by the image")
    }
}

/// Tries to open `path` for writing; returns 0 on success (closing it again) or the errno.
private func openForWriting(_ path: String, create: Bool = false) -> Int32 {
    let fd = open(path, O_WRONLY | O_CLOEXEC | (create ? O_CREAT : 0), 0o644)
    if fd == -1 { return errno }
    close(fd)
    return 0
}
