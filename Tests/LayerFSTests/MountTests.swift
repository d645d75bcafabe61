import Foundation
import LayerCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The tree every mount test starts from. Block 1 seals events 0...5; then /etc/hosts changes and
/// /a.txt is deleted.
///
///     1 mkdir /etc   2 write /etc/hosts "v1"   3 write /etc/motd "same"   4 write /a.txt "a"
///     5 symlink /link -> etc/hosts   (seal: block 1 = 0...5)   6 write /etc/hosts "v2"   7 unlink /a.txt
func buildSampleStore(_ store: Store) throws {
    _ = try store.commit(.mkdir(path: "/etc"), by: tester)
    _ = try store.commit(.write(path: "/etc/hosts", content: Array("v1\n".utf8)), by: tester)
    _ = try store.commit(.write(path: "/etc/motd", content: Array("same\n".utf8)), by: tester)
    _ = try store.commit(.write(path: "/a.txt", content: Array("a\n".utf8)), by: tester)
    _ = try store.commit(.symlink(path: "/link", target: "etc/hosts"), by: tester)
    _ = try store.seal()
    _ = try store.commit(.write(path: "/etc/hosts", content: Array("v2\n".utf8)), by: tester)
    _ = try store.commit(.unlink(path: "/a.txt"), by: tester)
}

func canonicalTime(_ store: Store, _ seq: UInt64) throws -> String { try store.time(ofSequence: seq).canonical }

@Suite(.serialized, .enabled(if: fuseUnavailableReason == nil, "real mounts: \(fuseUnavailableReason ?? "")"))
struct MountTests {
    @Test func presentIsServedFromTheHead() throws {
        try withMountedStore(build: buildSampleStore) { (m: MountedStore, store: Store) throws in
            #expect(try FS.list(m.mountPoint) == ["etc", "link"])
            #expect(try FS.list(m.mountPoint + "/etc") == ["hosts", "motd"])
            #expect(try FS.read(m.mountPoint + "/etc/hosts") == "v2\n")
            #expect(try FS.read(m.mountPoint + "/link") == "v2\n")
            #expect(try FileManager.default.destinationOfSymbolicLink(atPath: m.mountPoint + "/link") == "etc/hosts")
            let st = try FS.lstat(m.mountPoint + "/etc/hosts").get()
            let info = try store.stat("/etc/hosts")
            #expect(st.st_size == 3)
            #expect(st.st_mode & 0o7777 == info.mode)
            #expect(st.st_uid == info.uid)
            #expect(Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec) == info.mtime.nanoseconds)
        }
    }

    @Test func readdirOfTheRootHidesTheAtNamesWhichStillResolve() throws {
        try withMountedStore(build: buildSampleStore) { (m: MountedStore, _: Store) throws in
            #expect(try FS.list(m.mountPoint).allSatisfy { !$0.hasPrefix("@") })
            for name in ["@time", "@block", "@history"] {
                #expect(FS.lstatErrno(m.mountPoint + "/" + name) == 0, "\(name) resolves")
            }
            #expect(FS.lstatErrno(m.mountPoint + "/@other") == ENOENT)
        }
        try withMountedStore(options: ["-o", "show_at"], build: buildSampleStore) { (m: MountedStore, _: Store) throws in
            #expect(try FS.list(m.mountPoint) == ["@block", "@history", "@similar", "@time", "etc", "link"])
        }
    }

    @Test func timeDirectoryListsCanonicalTimesAndLatest() throws {
        try withMountedStore(build: buildSampleStore) { (m: MountedStore, store: Store) throws in
            var expected = try (0...store.headSequence).map { try canonicalTime(store, $0) }
            expected.append("latest")
            #expect(try FS.list(m.mountPoint + "/@time") == Set(expected).sorted())
        }
    }

    @Test func timeViewsShowTheTreeAtThatTime() throws {
        try withMountedStore(build: buildSampleStore) { (m: MountedStore, store: Store) throws in
            let t5 = try canonicalTime(store, 5)
            let root = m.mountPoint + "/@time/" + t5
            #expect(try FS.list(root) == ["a.txt", "etc", "link"])
            let expected = String(decoding: try store.read(store.stat("/etc/hosts", at: 5)), as: UTF8.self)
            #expect(try FS.read(root + "/etc/hosts") == expected)
            #expect(expected == "v1\n")
            #expect(try FS.read(root + "/a.txt") == "a\n")
            #expect(try FS.read(m.mountPoint + "/@time/latest/etc/hosts") == "v2\n")
            #expect(FS.lstatErrno(m.mountPoint + "/@time/latest/a.txt") == ENOENT)
            // Every event's directory shows that event's tree.
            for seq in UInt64(1)...store.headSequence {
                let names = try store.list("/", at: seq).map(\.name).sorted()
                #expect(try FS.list(m.mountPoint + "/@time/" + canonicalTime(store, seq)) == names, "at event \(seq)")
            }
        }
    }

    @Test func timeNamesInEveryAcceptedForm() throws {
        try withMountedStore(build: buildSampleStore) { (m: MountedStore, store: Store) throws in
            let t = try store.time(ofSequence: 2)  // /etc/hosts is "v1" from here until event 6
            let seconds = t.seconds
            let fraction = String(t.subsecondNanoseconds).leftPadded(to: 9)
            let canonical = t.canonical
            let forms = [
                canonical,
                canonical.replacingOccurrences(of: "T", with: "t").replacingOccurrences(of: "Z", with: "z"),
                canonical.replacingOccurrences(of: "T", with: " "),
                String(canonical.dropLast()),  // no offset: UTC
                "\(seconds).\(fraction)",
                "@\(seconds).\(fraction)",
                // The same instant at +01:00.
                try shifted(canonical),
            ]
            for form in forms {
                #expect(try FS.read(m.mountPoint + "/@time/" + form + "/etc/hosts") == "v1\n", "form \(form)")
            }
            // A time far in the future is the head; before the first event is ENOENT.
            #expect(try FS.read(m.mountPoint + "/@time/2261-12-31/etc/hosts") == "v2\n")
            #expect(FS.lstatErrno(m.mountPoint + "/@time/1970-01-01") == ENOENT)
            #expect(FS.lstatErrno(m.mountPoint + "/@time/@0") == ENOENT)
        }
    }

    @Test func hostileNamesAreENOENTAndNeverCrashTheDaemon() throws {
        try withMountedStore(build: buildSampleStore) { (m: MountedStore, _: Store) throws in
            let hostile = [
                "..%2f..", "%", "%00", "%s%s%s%n", "garbage", "-1e999", "2026-13-01", "2026-11-21T25:00Z",
                "2026-11-21T09:11:60Z", "@", "@-", "latest2", "LATEST", " latest", "ü", "２０２６-11-21",
                "\u{202E}2026-11-21", "\u{FEFF}", String(repeating: "9", count: 64), String(repeating: "9", count: 65),
                String(repeating: "x", count: 255), "1" + String(repeating: "0", count: 30), "\\", "*", "?", "'\"",
            ]
            for directory in ["@time", "@block", "@history"] {
                for name in hostile {
                    let path = m.mountPoint + "/" + directory + "/" + name
                    #expect(FS.lstatErrno(path) == ENOENT, "\(directory)/\(name)")
                    #expect(FS.lstatErrno(path + "/etc") == ENOENT, "\(directory)/\(name)/etc")
                }
                // Longer than NAME_MAX (FUSE passes names up to 1024 bytes): ENOENT too.
                #expect(FS.lstatErrno(m.mountPoint + "/" + directory + "/" + String(repeating: "9", count: 300)) == ENOENT)
            }
            for name in ["01", "0", "2", "+1", "-1", "1.0", "0x1", "18446744073709551616"] {
                #expect(FS.lstatErrno(m.mountPoint + "/@block/" + name) == ENOENT, "@block/\(name)")
            }
            // `..` is resolved by the kernel: it climbs out of the view.
            #expect(try FS.list(m.mountPoint + "/@time/../etc") == ["hosts", "motd"])
            #expect(m.process.isRunning, "the daemon survived")
            #expect(try FS.read(m.mountPoint + "/etc/hosts") == "v2\n")
        }
    }

    @Test func blockViews() throws {
        try withMountedStore(build: buildSampleStore) { (m: MountedStore, store: Store) throws in
            #expect(try FS.list(m.mountPoint + "/@block") == ["1", "latest"])
            #expect(store.blocks.map(\.number) == [1])
            for name in ["1", "latest"] {
                #expect(try FS.read(m.mountPoint + "/@block/\(name)/etc/hosts") == "v1\n")
                #expect(try FS.list(m.mountPoint + "/@block/\(name)") == ["a.txt", "etc", "link"])
            }
        }
    }

    @Test func oneInodePerVersionAcrossViews() throws {
        try withMountedStore(build: buildSampleStore) { (m: MountedStore, store: Store) throws in
            let t3 = m.mountPoint + "/@time/" + (try canonicalTime(store, 3))
            let t5 = m.mountPoint + "/@time/" + (try canonicalTime(store, 5))
            let t7 = m.mountPoint + "/@time/" + (try canonicalTime(store, 7))
            // /etc/motd never changed: one inode in every historical view and its history file.
            let motd = try FS.inode(m.mountPoint + "/@time/latest/etc/motd")
            for path in [t3 + "/etc/motd", t5 + "/etc/motd", t7 + "/etc/motd", m.mountPoint + "/@block/1/etc/motd",
                         m.mountPoint + "/@history/etc/motd/" + (try canonicalTime(store, 3))] {
                #expect(try FS.inode(path) == motd, "\(path)")
            }
            // /etc/hosts changed at event 6: the two versions have different inodes.
            let v1 = try FS.inode(t5 + "/etc/hosts")
            let v2 = try FS.inode(t7 + "/etc/hosts")
            #expect(v1 == (try FS.inode(t3 + "/etc/hosts")))
            #expect(v1 != v2)
            #expect(v2 == (try FS.inode(m.mountPoint + "/@time/latest/etc/hosts")))
            // The present is live: its file is an object of its own, not a version.
            #expect(try FS.inode(m.mountPoint + "/etc/hosts") != v2)
            // No two different versions share an inode anywhere in the sample.
            var seen: [UInt: String] = [:]
            for seq in UInt64(1)...store.headSequence {
                let root = m.mountPoint + "/@time/" + (try canonicalTime(store, seq))
                for path in ["/etc/hosts", "/etc/motd", "/a.txt", "/link"] {
                    guard let info = try? store.stat(path, at: seq) else { continue }
                    let ino = try FS.inode(root + path)
                    if let other = seen[ino] { #expect(other == "\(info.version)", "\(root + path)") }
                    seen[ino] = "\(info.version)"
                }
            }
        }
    }

    @Test func historyListsEveryVersionAndDeletion() throws {
        try withMountedStore(build: buildSampleStore) { (m: MountedStore, store: Store) throws in
            let hosts = m.mountPoint + "/@history/etc/hosts"
            let names = [try canonicalTime(store, 2), try canonicalTime(store, 6)]
            #expect(try FS.list(hosts) == names)
            #expect(try FS.read(hosts + "/" + names[0]) == "v1\n")
            #expect(try FS.read(hosts + "/" + names[1]) == "v2\n")
            let a = m.mountPoint + "/@history/a.txt"
            #expect(try FS.list(a) == [try canonicalTime(store, 4), try canonicalTime(store, 7) + ".deleted"])
            #expect(try FS.read(a + "/" + canonicalTime(store, 7) + ".deleted") == "")
            #expect(try FS.list(m.mountPoint + "/@history") == ["etc", "link"])
            #expect(try FS.list(m.mountPoint + "/@history/etc") == ["hosts", "motd"])
            #expect(FS.lstatErrno(m.mountPoint + "/@history/never") == ENOENT)
            #expect(FS.lstatErrno(hosts + "/2026-01-01T00:00:00.000000000Z") == ENOENT)
        }
    }

    @Test func provenanceAsExtendedAttributes() throws {
        try withMountedStore(build: buildSampleStore) { (m: MountedStore, store: Store) throws in
            let v1 = m.mountPoint + "/@time/" + (try canonicalTime(store, 5)) + "/etc/hosts"
            #expect(FS.getxattr(v1, "user.layerfs.seq") == .success("2"))
            #expect(FS.getxattr(v1, "user.layerfs.hash") == .success(try store.event(2).hash.hex))
            #expect(FS.getxattr(v1, "user.layerfs.uid") == .success("1000"))
            #expect(FS.getxattr(v1, "user.layerfs.process") == .success("tester"))
            #expect(FS.getxattr(v1, "user.layerfs.block") == .success("1"))
            #expect(FS.listxattr(v1).contains("user.layerfs.hash"))
            // The unsealed version has no block.
            let v2 = m.mountPoint + "/@history/etc/hosts/" + (try canonicalTime(store, 6))
            #expect(FS.getxattr(v2, "user.layerfs.seq") == .success("6"))
            #expect(FS.getxattr(v2, "user.layerfs.block") == .failure(SysError(ENODATA)))
            #expect(FS.getxattr(v1, "user.other") == .failure(SysError(ENODATA)))
        }
    }

    @Test func everyChangeIsEROFS() throws {
        try withMountedStore(build: buildSampleStore) { (m: MountedStore, store: Store) throws in
            let views = [
                m.mountPoint + "/@time/" + (try canonicalTime(store, 5)), m.mountPoint + "/@block/1", m.mountPoint + "/@time/latest",
            ]
            for root in views {
                #expect(FS.openErrno(root + "/etc/hosts", O_WRONLY) == EROFS, "\(root)")
                #expect(FS.openErrno(root + "/etc/hosts", O_RDWR | O_TRUNC) == EROFS, "\(root)")
                #expect(FS.openErrno(root + "/etc/new", O_WRONLY | O_CREAT) == EROFS, "\(root)")
                #expect(mkdir(root + "/d", 0o755) == -1 && errno == EROFS, "\(root)")
                #expect(unlink(root + "/etc/hosts") == -1 && errno == EROFS, "\(root)")
                #expect(chmod(root + "/etc/hosts", 0o600) == -1 && errno == EROFS, "\(root)")
                #expect(rename(root + "/etc/hosts", root + "/etc/x") == -1 && errno == EROFS, "\(root)")
                #expect(FS.setxattrErrno(root + "/etc/hosts", "user.x", "1") == EROFS, "\(root)")
            }
            #expect(mkdir(m.mountPoint + "/@time/x", 0o755) == -1 && errno == EROFS)
            let hosts = m.mountPoint + "/@history/etc/hosts/" + (try canonicalTime(store, 6))
            #expect(FS.openErrno(hosts, O_WRONLY) == EROFS)
            #expect(unlink(hosts) == -1 && errno == EROFS)
            #expect(FS.setxattrErrno(hosts, "user.x", "1") == EROFS)
            // Across views: from the present into a historical one, and back.
            #expect(rename(m.mountPoint + "/etc/hosts", m.mountPoint + "/@time/latest/etc/x") == -1 && errno == EROFS)
            #expect(rename(m.mountPoint + "/@block/1/etc/hosts", m.mountPoint + "/etc/x") == -1 && errno == EROFS)
            #expect(link(m.mountPoint + "/@block/1/etc/hosts", m.mountPoint + "/etc/x") == -1 && errno == EROFS)
            #expect(try FS.read(m.mountPoint + "/etc/hosts") == "v2\n")
        }
    }

    @Test func setupErrorsAreClearAndImmediate() throws {
        let binary = try #require(LayerFSBinary.path)
        try withScratchDirectory { (dir: String) throws in
            try FileManager.default.createDirectory(atPath: dir + "/mnt", withIntermediateDirectories: false)
            let missingStore = try runProgram(binary, ["mount", dir + "/nostore", dir + "/mnt"])
            #expect(missingStore.status == 66)
            #expect(missingStore.output.contains("not a layerfs store"), "\(missingStore.output)")
            try Store.create(at: dir + "/store", by: tester)
            for arguments in [["-f"], []] {
                let missingMountPoint = try runProgram(binary, ["mount", dir + "/store", dir + "/nomnt"] + arguments)
                #expect(missingMountPoint.status == 66)
                #expect(missingMountPoint.output.contains("mount point \(dir)/nomnt: No such file or directory"), "\(missingMountPoint.output)")
            }
            #expect(!isMounted(dir + "/mnt"))
        }
        try withMountedStore(build: buildSampleStore) { (m: MountedStore, _: Store) throws in
            // Another store on the busy mount point.
            try Store.create(at: m.directory + "/other", by: tester)
            let busy = try runProgram(binary, ["mount", m.directory + "/other", m.mountPoint, "-f"])
            #expect(busy.status == 75)
            #expect(busy.output.contains("is busy"), "\(busy.output)")
            // The mounted store somewhere else.
            try FileManager.default.createDirectory(atPath: m.directory + "/mnt2", withIntermediateDirectories: false)
            let twice = try runProgram(binary, ["mount", m.storePath, m.directory + "/mnt2", "-f"])
            #expect(twice.status == 75)
            #expect(twice.output.contains("is already mounted on \(m.mountPoint)"), "\(twice.output)")
            #expect(!isMounted(m.directory + "/mnt2"))
            #expect(m.process.isRunning)
        }
    }

    @Test func withoutForegroundItDaemonizesAndUnmountEndsIt() throws {
        let binary = try #require(LayerFSBinary.path)
        try withScratchDirectory { (dir: String) throws in
            try Store.create(at: dir + "/store", by: tester)
            try FileManager.default.createDirectory(atPath: dir + "/mnt", withIntermediateDirectories: false)
            let result = try runProgram(binary, ["mount", dir + "/store", dir + "/mnt", "-o", "noindex"])
            defer { unmountRetrying(dir + "/mnt") }
            #expect(result.status == 0)
            #expect(result.output == "", "nothing on stdout or stderr")
            #expect(isMounted(dir + "/mnt"), "mounted when the command returns")
            #expect(try FS.list(dir + "/mnt") == [])
            #expect(FS.lstatErrno(dir + "/mnt/@time/latest") == 0)
            let unmount = try runProgram(findExecutable("fusermount3")!, ["-u", dir + "/mnt"])
            #expect(unmount.status == 0, "\(unmount.output)")
            #expect(!isMounted(dir + "/mnt"))
            // The daemon exits after the unmount.
            let deadline = Date().addingTimeInterval(5)
            while !processes(mentioning: dir + "/store").isEmpty && Date() < deadline { usleep(20_000) }
            #expect(processes(mentioning: dir + "/store").isEmpty, "the daemon exited")
        }
    }

    /// A relative store path still works once the daemon has left its working directory (blobs
    /// are written by path: a large file must commit).
    @Test func daemonWithARelativeStorePathCommitsBlobs() throws {
        let binary = try #require(LayerFSBinary.path)
        try withScratchDirectory { (dir: String) throws in
            try Store.create(at: dir + "/store", by: tester)
            try FileManager.default.createDirectory(atPath: dir + "/mnt", withIntermediateDirectories: false)
            let result = try runProgram("/bin/sh", ["-c", "cd '\(dir)' && exec '\(binary)' mount store mnt -o noindex"])
            defer { unmountRetrying(dir + "/mnt") }
            #expect(result.status == 0, "\(result.output)")
            let big = [UInt8]((0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 7) })
            #expect(FileManager.default.createFile(atPath: dir + "/mnt/big", contents: Data(big)))
            #expect(FileManager.default.contents(atPath: dir + "/mnt/big") == Data(big))
            // /proc/mounts names the store by its absolute path.
            let mounts = try String(contentsOfFile: "/proc/mounts", encoding: .utf8)
            #expect(mounts.contains("\(dir)/store \(dir)/mnt fuse.layerfs "), "\(mounts)")
        }
    }

    @Test func sigtermUnmountsAndExitsCleanly() throws {
        try withMountedStore(build: buildSampleStore) { (m: MountedStore, _: Store) throws in
            kill(m.process.processIdentifier, SIGTERM)
            // Bounded: if SIGTERM were ignored, teardown's unmount still ends the daemon.
            let deadline = Date().addingTimeInterval(10)
            while m.process.isRunning && Date() < deadline { usleep(20_000) }
            try #require(!m.process.isRunning, "the daemon ignored SIGTERM")
            #expect(m.process.terminationStatus == 0, "\(m.stderr)")
            #expect(!isMounted(m.mountPoint))
        }
    }
}

extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}

/// `canonical` (UTC, `...Z`) written as the same instant one hour ahead (`+01:00`), or one hour
/// behind (`-01:00`) in the last hour of the UTC day, so no date arithmetic is needed.
func shifted(_ canonical: String) throws -> String {
    let hour = try #require(Int(canonical.dropFirst(11).prefix(2)))
    let (newHour, offset) = hour < 23 ? (hour + 1, "+01:00") : (hour - 1, "-01:00")
    return String(canonical.prefix(11)) + String(newHour).leftPadded(to: 2) + String(canonical.dropFirst(13).dropLast()) + offset
}

/// Pids of processes whose command line contains `text`.
func processes(mentioning text: String) -> [Int32] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap { entry -> Int32? in
        guard let pid = Int32(entry), pid != getpid(),
            let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline")
        else { return nil }
        let line = String(decoding: data.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
        return line.contains(text) ? pid : nil
    }
}
