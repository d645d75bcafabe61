// Robustness of real mounts (issue 3: point 9's second half, and point 1's unmount behaviour):
//
// - a full disk: close(2)/fsync(2) return ENOSPC, nothing acknowledged is lost, the store still
//   verifies, and commits work again once there is room;
// - kill -9 of the daemon mid-stream: every acknowledged change survives, nothing else appears
//   but changes whose call never returned;
// - SIGTERM, and a lazy `fusermount3 -uz`, with a file still open and dirty: the open file is
//   committed, the store closes cleanly and seals a block;
// - a second writer (mount, import, seal) while mounted is refused with exit 75, however the
//   store was named when mounted (a relative path too, also for a daemonized mount);
// - a seal at close that fails (a full disk at unmount) leaves a store that verifies and mounts.
//
// Teardown always runs, also when a check fails: the FUSE mount first (MountedStore.tearDown),
// then the loop filesystem, then its loop device. Figures for the record are printed as lines
// starting with "[robustness]".

import Foundation
import LayerCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Why the loop-filesystem test cannot run here, or nil when it can.
private let loopFilesystemUnavailableReason: String? = {
    if let reason = fuseUnavailableReason { return reason }
    if access("/dev/loop-control", F_OK) != 0 { return "/dev/loop-control is missing (no loop devices)" }
    for tool in ["truncate", "mkfs.ext4", "losetup", "mount", "umount"] where findExecutable(tool) == nil {
        return "\(tool) is not installed (or not on PATH)"
    }
    return nil
}()

@Suite(.serialized, .enabled(if: fuseUnavailableReason == nil, "real mounts: \(fuseUnavailableReason ?? "")"))
struct RobustnessTests {
    // MARK: 1. A full disk

    @Test(.enabled(if: loopFilesystemUnavailableReason == nil, "loop filesystem: \(loopFilesystemUnavailableReason ?? "")"))
    func fullDiskFailsCloseOrFsyncWithENOSPCAndLosesNothingAcknowledged() throws {
        try withScratchDirectory { (dir: String) throws in
            try withLoopExt4(in: dir, sizeMiB: 32) { (fs: String) throws in
                let storePath = fs + "/store"
                try Store.create(at: storePath, by: tester)
                // Room that is given back later, from outside the store (see below).
                let ballast = fs + "/ballast"
                try Data(repeating: 0xBA, count: 4 << 20).write(to: URL(fileURLWithPath: ballast))
                let mountPoint = dir + "/mnt"
                try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: false)

                var acknowledged: [String: [UInt8]] = [:]
                var failures: [String] = []
                var failed: [String: [UInt8]] = [:]  // what the failed commits tried to write
                try withMount(storePath, on: mountPoint, log: dir + "/log-1") { (m: MountedStore) throws in
                    // Phase 1: large files (blobs) and small ones (inline), every other one fsynced,
                    // until a commit fails.
                    let sizes = [1_536 << 10, 100 << 10, 8 << 10, 300 << 10]
                    var first: WriteOutcome?
                    var bytesAcknowledged = 0
                    for i in 0..<1000 {
                        let name = "/big-\(i)"
                        let content = pattern(seed: i, count: sizes[i % sizes.count])
                        let outcome = writeFile(m.mountPoint + name, content, fsync: i % 2 == 1)
                        #expect(outcome.open == 0 && outcome.write == 0, "\(name): \(outcome)")
                        if outcome.acknowledged {
                            acknowledged[name] = content
                            bytesAcknowledged += content.count
                        }
                        if let call = outcome.failedCommitCall {
                            first = outcome
                            if !outcome.acknowledged { failed[name] = content }
                            failures.append("\(name) (\(content.count) bytes): \(call) -> \(outcome.commitErrno)")
                            break
                        }
                    }
                    let firstFailure = try #require(first, "the disk never filled up")
                    #expect(firstFailure.commitErrno == ENOSPC, "\(firstFailure)")
                    print("[robustness] ENOSPC phase 1: \(acknowledged.count) files (\(bytesAcknowledged) bytes) committed, then \(failures[0])")

                    // Phase 2: ever smaller files (inline: their content goes into the log line), until
                    // even a 200-byte one fails: the disk is full to the last block.
                    for size in [48 << 10, 4 << 10, 200] {
                        var committed = 0
                        for i in 0..<400 {
                            let name = "/small-\(size)-\(i)"
                            let content = pattern(seed: 100_000 + size + i, count: size)
                            let outcome = writeFile(m.mountPoint + name, content, fsync: i % 2 == 0)
                            #expect(outcome.open == 0 && outcome.write == 0, "\(name): \(outcome)")
                            if outcome.acknowledged {
                                acknowledged[name] = content
                                committed += 1
                            }
                            if let call = outcome.failedCommitCall {
                                #expect(outcome.commitErrno == ENOSPC, "\(name): \(outcome)")
                                if !outcome.acknowledged { failed[name] = content }
                                failures.append("\(name): \(call) -> \(outcome.commitErrno)")
                                break
                            }
                        }
                        print("[robustness] ENOSPC phase 2: \(committed) files of \(size) bytes committed, then \(failures.last ?? "no failure")")
                    }
                    print("[robustness] ENOSPC: \(acknowledged.count) files acknowledged in all; free bytes now \(freeBytes(fs))")

                    // What the mount shows is exactly what was acknowledged: a new file whose commit
                    // failed leaves the present once its handle is released (release(2) is
                    // asynchronous: it may come a moment after close returns).
                    try waitForListing(m.mountPoint, equals: Set(acknowledged.keys))
                    try expectPresent(m.mountPoint, equals: acknowledged)

                    // The store verifies while full and mounted.
                    let verify = try runLayerFS(["verify", storePath])
                    #expect(verify.status == 0, "\(verify.output)")

                    // An unlink while the disk is full: it commits, or fails with ENOSPC and changes nothing.
                    let victim = try #require(acknowledged.keys.sorted().first)
                    if unlink(m.mountPoint + victim) == 0 {
                        acknowledged[victim] = nil
                        print("[robustness] ENOSPC: an unlink on the full disk committed")
                    } else {
                        let e = errno
                        #expect(e == ENOSPC, "unlink on a full disk: errno \(e)")
                        print("[robustness] ENOSPC: an unlink on the full disk failed with errno \(e)")
                    }
                    try expectPresent(m.mountPoint, equals: acknowledged)
                }

                // Unmounted with the disk still full: the seal at close may fail for lack of room;
                // either way the store is closed cleanly and verifies.
                #expect(lockLine(storePath) == "", "the store was not closed cleanly")
                let full = try runLayerFS(["verify", storePath])
                #expect(full.status == 0, "\(full.output)")
                do {
                    let store = try Store.open(storePath, mode: .readOnly)
                    #expect(try presentTree(store) == acknowledged.mapValues { TreeNode.file($0, mode: 0o644 & ~currentUmask) })
                    let log = (try? String(contentsOfFile: dir + "/log-1/mount.stderr", encoding: .utf8)) ?? ""
                    let sealError = log.split(separator: "\n").first { $0.contains("seal at close failed") } ?? "none"
                    print("[robustness] ENOSPC: unmounted on the full disk; blocks sealed at that close: \(store.blocks.count); seal error: \(sealError)")
                }

                // The store is append-only: deleting files through the mount gives no space back
                // (their versions stay in the history). Room comes from outside: the ballast.
                #expect(unlink(ballast) == 0)
                sync()
                try withMount(storePath, on: mountPoint, log: dir + "/log-2") { (m: MountedStore) throws in
                    // After unmount and remount: the same files, exactly.
                    try expectPresent(m.mountPoint, equals: acknowledged)

                    let freeBefore = freeBytes(fs)
                    var deletedBytes: UInt64 = 0
                    for name in acknowledged.filter({ $0.value.count == 1_536 << 10 }).keys.sorted().prefix(3) {
                        #expect(unlink(m.mountPoint + name) == 0, "unlink \(name): errno \(errno)")
                        deletedBytes += UInt64(acknowledged[name]!.count)
                        acknowledged[name] = nil
                    }
                    sync()
                    let freeAfter = freeBytes(fs)
                    #expect(deletedBytes > 0 && freeAfter < freeBefore + deletedBytes / 4, "deleting \(deletedBytes) bytes through the mount freed \(Int64(freeAfter) - Int64(freeBefore))")

                    // The failed files can be written again, under the same names; new writes commit,
                    // large (a blob) and small.
                    for name in failed.keys { #expect(FS.lstatErrno(m.mountPoint + name) == ENOENT, "\(name)") }
                    var writes = failed.sorted { $0.key < $1.key }
                    writes += [("/after-big", pattern(seed: -1, count: 1 << 20)), ("/after-small", pattern(seed: -2, count: 1000))]
                    for (name, content) in writes {
                        let outcome = writeFile(m.mountPoint + name, content, fsync: name.hasPrefix("/after"))
                        #expect(outcome.acknowledged && outcome.failedCommitCall == nil, "\(name): \(outcome)")
                        if outcome.acknowledged { acknowledged[name] = content }
                    }
                    try expectPresent(m.mountPoint, equals: acknowledged)
                }
                try expectCleanlyClosedAndSealed(storePath)
                do {
                    let store = try Store.open(storePath, mode: .readOnly)
                    #expect(try presentTree(store) == acknowledged.mapValues { TreeNode.file($0, mode: 0o644 & ~currentUmask) })
                }
            }
        }
    }

    /// The seal at close writes blocks.jsonl, then metadata/current_block. When the second write
    /// fails (here: a directory where its temporary file goes; on a full disk: ENOSPC), the store
    /// must still be closed in a state that verifies and can be mounted again.
    @Test func aSealThatFailsAtUnmountLeavesAStoreThatVerifies() throws {
        try withMountedStore(build: buildUnsealedStore) { (m: MountedStore, _: Store) throws in
            #expect(writeFile(m.mountPoint + "/before", Array("before\n".utf8), fsync: false).acknowledged)
            // FileSystem.writeFileAtomically's temporary name: <file>.tmp-<pid of the writer>.
            let obstacle = m.storePath + "/metadata/current_block.tmp-\(m.process.processIdentifier)"
            try FileManager.default.createDirectory(atPath: obstacle, withIntermediateDirectories: false)
            defer { try? FileManager.default.removeItem(atPath: obstacle) }
            try m.tearDown()
            #expect(m.stderr.contains("seal at close failed"), "\(m.stderr)")
            #expect(lockLine(m.storePath) == "")
            let verify = try runLayerFS(["verify", m.storePath])
            #expect(verify.status == 0, "\(verify.output)")
            do {
                let store = try Store.open(m.storePath, mode: .readOnly)
                #expect(store.blocks.isEmpty, "no block was sealed")
                #expect(try store.read(store.stat("/before")) == Array("before\n".utf8))
            }
            // The next mount opens it and seals everything at its close.
            try FileManager.default.removeItem(atPath: obstacle)
            try withMount(m.storePath, on: m.mountPoint, log: m.directory + "/log-2") { (m2: MountedStore) throws in
                #expect(try FS.read(m2.mountPoint + "/before") == "before\n")
            }
            try expectCleanlyClosedAndSealed(m.storePath)
        }
    }

    // MARK: 2. kill -9 of the daemon

    @Test func sigkillOfTheDaemonLosesNothingAcknowledged() throws {
        try withScratchDirectory { (dir: String) throws in
            let storePath = dir + "/store"
            try Store.create(at: storePath, by: tester)
            let mountPoint = dir + "/mnt"
            try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: false)
            try FileManager.default.createDirectory(atPath: dir + "/log-1", withIntermediateDirectories: false)

            let m = try MountedStore(directory: dir + "/log-1", storePath: storePath, mountPoint: mountPoint, options: [])
            let streams = [OperationStream(root: "/a", mountPoint: mountPoint, large: false), OperationStream(root: "/b", mountPoint: mountPoint, large: true)]
            let finished = DispatchGroup()
            let killedAt: (a: Int, b: Int)
            do {
                defer {
                    // Whatever happens: the daemon dies, the writers end (their calls fail once the
                    // daemon is gone, and they close their files), the dead mount goes.
                    if m.process.isRunning { kill(m.process.processIdentifier, SIGKILL) }
                    m.process.waitUntilExit()
                    if finished.wait(timeout: .now() + 10) == .timedOut { Issue.record("a writer thread did not end") }
                    cleanUpDeadMount(mountPoint)
                }
                for stream in streams {
                    finished.enter()
                    Thread.detachNewThread {
                        stream.run()
                        finished.leave()
                    }
                }
                // Mid-stream: once both writers have a few acknowledged changes behind them.
                let deadline = Date().addingTimeInterval(20)
                while (streams[0].acknowledgedCount < 60 || streams[1].acknowledgedCount < 8) && Date() < deadline {
                    usleep(5_000)
                }
                killedAt = (streams[0].acknowledgedCount, streams[1].acknowledgedCount)
                kill(m.process.processIdentifier, SIGKILL)
            }
            try #require(!isMounted(mountPoint))
            #expect(m.process.terminationReason == .uncaughtSignal && m.process.terminationStatus == SIGKILL)
            #expect(killedAt.a >= 60 && killedAt.b >= 8, "the writers were too slow: \(killedAt)")
            for stream in streams { #expect(stream.stopped, "\(stream.root) never saw the daemon die") }

            // The lock still names the dead writer; verify and status work and say so.
            #expect(lockLine(storePath).contains("pid \(m.process.processIdentifier) "), "\(lockLine(storePath))")
            let verify = try runLayerFS(["verify", storePath])
            #expect(verify.status == 0, "\(verify.output)")
            let status = try runLayerFS(["status", storePath])
            #expect(status.status == 0, "\(status.output)")
            #expect(status.output.contains("the last writer did not close cleanly"), "\(status.output)")
            // What the open may notice after a kill: the head file (updated after each sync, not
            // synced itself) one event behind, or a torn tail. Nothing else.
            let notes = status.output.split(separator: "\n").drop { !$0.hasPrefix("notes") }
            #expect(notes.allSatisfy { $0.hasSuffix("notes      none") || $0.contains("the head lagged the log") || $0.contains("torn or garbage tail") }, "\(status.output)")
            print("[robustness] kill -9: acknowledged \(streams[0].acknowledgedCount) + \(streams[1].acknowledgedCount) operations; in flight: \(streams.map { $0.inFlight?.description ?? "none" })")
            print("[robustness] kill -9: verify says: \(verify.output.split(separator: "\n").joined(separator: " | "))")
            print("[robustness] kill -9: status says: \(status.output.split(separator: "\n").filter { $0.hasPrefix("writer") || $0.hasPrefix("notes") }.joined(separator: " | "))")

            // The store holds every acknowledged change, and nothing else but in-flight ones.
            let candidates = expectedTrees(streams)
            let found: [String: TreeNode]
            do {
                let store = try Store.open(storePath, mode: .readOnly)
                found = try presentTree(store)
            }
            let match = candidates.firstIndex(of: found)
            #expect(match != nil, "the store's tree is none of the \(candidates.count) allowed ones: \(describeDifference(found, candidates[0]))")
            if let match { print("[robustness] kill -9: the store matches allowed state \(match) (bit 0: /a's in-flight change landed, bit 1: /b's)") }

            // Remount: the new writer notes the unclean shutdown; the mount shows the same tree,
            // and takes new changes.
            try FileManager.default.createDirectory(atPath: dir + "/log-2", withIntermediateDirectories: false)
            try withMount(storePath, on: mountPoint, log: dir + "/log-2") { (m2: MountedStore) throws in
                #expect(try mountTree(m2.mountPoint) == found)
                let outcome = writeFile(m2.mountPoint + "/after", Array("after the crash\n".utf8), fsync: false)
                #expect(outcome.acknowledged, "\(outcome)")
                #expect(m2.stderr.contains("did not close cleanly"), "\(m2.stderr)")
            }
            #expect(lockLine(storePath) == "")
            let after = try runLayerFS(["verify", storePath])
            #expect(after.status == 0, "\(after.output)")
        }
    }

    // MARK: 3. Ending the mount with a file open and dirty

    @Test func sigtermCommitsOpenDirtyFilesClosesTheStoreAndSeals() throws {
        try withMountedStore(build: buildUnsealedStore) { (m: MountedStore, _: Store) throws in
            // Written, never closed: a new file, and an existing one truncated and rewritten.
            // (FUSE reports the calling thread's id; layerfs records its process: this test's.)
            let writer = getpid()
            let newContent = Array("written, never closed\n".utf8)
            let hostsContent = Array("v2: open at unmount\n".utf8)
            let fdNew = open(m.mountPoint + "/new.txt", O_WRONLY | O_CREAT | O_EXCL, 0o644)
            let fdHosts = open(m.mountPoint + "/etc/hosts", O_WRONLY | O_TRUNC)
            try #require(fdNew >= 0 && fdHosts >= 0, "open: errno \(errno)")
            #expect(writeAll(fdNew, newContent) == 0)
            #expect(writeAll(fdHosts, hostsContent) == 0)
            do {
                let store = try Store.open(m.storePath, mode: .readOnly)
                #expect(throws: LayerError.self) { try store.stat("/new.txt") }
                #expect(try store.read(store.stat("/etc/hosts")) == Array("v1\n".utf8), "committed before the unmount")
            }

            kill(m.process.processIdentifier, SIGTERM)
            let deadline = Date().addingTimeInterval(10)
            while m.process.isRunning && Date() < deadline { usleep(20_000) }
            try #require(!m.process.isRunning, "the daemon ignored SIGTERM")
            #expect(m.process.terminationReason == .exit && m.process.terminationStatus == 0, "\(m.stderr)")
            #expect(!isMounted(m.mountPoint))
            // The daemon is gone: the handles can only fail now (their content is already in the store).
            let closes = [fdNew, fdHosts].map { close($0) == 0 ? "0" : "errno \(errno)" }
            print("[robustness] SIGTERM: close(2) of the open files after the daemon exited: \(closes)")

            try expectCleanlyClosedAndSealed(m.storePath)
            let store = try Store.open(m.storePath, mode: .readOnly)
            let newInfo = try store.stat("/new.txt")
            #expect(try store.read(newInfo) == newContent)
            #expect(newInfo.mode == 0o644 & ~currentUmask)
            let hostsInfo = try store.stat("/etc/hosts")
            #expect(try store.read(hostsInfo) == hostsContent)
            // Committed on behalf of the writer that wrote them, not of the daemon doing it.
            for info in [newInfo, hostsInfo] {
                #expect(try store.event(info.contentSeq).provenance.pid == writer)
            }
        }
    }

    @Test func lazyUnmountWithAnOpenFileKeepsServingItUntilItIsClosed() throws {
        try withMountedStore(build: buildUnsealedStore) { (m: MountedStore, _: Store) throws in
            let fd = open(m.mountPoint + "/lazy.txt", O_WRONLY | O_CREAT | O_EXCL, 0o644)
            try #require(fd >= 0, "open: errno \(errno)")
            var fdOpen = true
            defer { if fdOpen { close(fd) } }
            #expect(writeAll(fd, Array("part 1\n".utf8)) == 0)

            // A plain unmount is refused while the file is open.
            let busy = try runProgram(findExecutable("fusermount3")!, ["-u", m.mountPoint])
            #expect(busy.status != 0 && isMounted(m.mountPoint), "\(busy.output)")
            #expect(busy.output.contains("busy"), "\(busy.output)")

            // A lazy one detaches at once; the open file is still served, and committed at close.
            let lazy = try runProgram(findExecutable("fusermount3")!, ["-u", "-z", m.mountPoint])
            #expect(lazy.status == 0, "\(lazy.output)")
            #expect(!isMounted(m.mountPoint))
            #expect(m.process.isRunning, "the daemon serves the open file until it is closed")
            #expect(writeAll(fd, Array("part 2\n".utf8)) == 0)
            fdOpen = false
            #expect(close(fd) == 0, "close: errno \(errno)")

            // The last handle gone, the connection ends and the daemon exits cleanly.
            let deadline = Date().addingTimeInterval(10)
            while m.process.isRunning && Date() < deadline { usleep(20_000) }
            try #require(!m.process.isRunning, "the daemon did not exit after the last handle closed")
            #expect(m.process.terminationReason == .exit && m.process.terminationStatus == 0, "\(m.stderr)")

            try expectCleanlyClosedAndSealed(m.storePath)
            let store = try Store.open(m.storePath, mode: .readOnly)
            #expect(try store.read(store.stat("/lazy.txt")) == Array("part 1\npart 2\n".utf8))
        }
    }

    // MARK: 4. A second writer while mounted

    @Test(arguments: [false, true])
    func aSecondWriterIsRefusedWhileMounted(mountedByRelativePath: Bool) throws {
        try withScratchDirectory { (dir: String) throws in
            let storePath = dir + "/store"
            try Store.create(at: storePath, by: tester)
            for name in ["mnt", "mnt2", "input", "log"] {
                try FileManager.default.createDirectory(atPath: dir + "/" + name, withIntermediateDirectories: false)
            }
            try Data("imported\n".utf8).write(to: URL(fileURLWithPath: dir + "/input/file"))
            // `layerfs mount ./store /mnt` is how people type it: the store's path as given.
            let spelling = mountedByRelativePath ? relativePath(to: storePath) : storePath
            try withMount(spelling, on: dir + "/mnt", log: dir + "/log") { (m: MountedStore) throws in
                let daemon = m.process.processIdentifier
                #expect(try mountSource(of: m.mountPoint) == storePath, "the mount's source in /proc/mounts")
                for other in [storePath, storePath + "/", spelling] {
                    let second = try runLayerFS(["mount", other, dir + "/mnt2", "-f"])
                    #expect(second.status == 75, "\(other): \(second.output)")
                    #expect(second.output.contains("is already mounted on \(m.mountPoint)"), "\(other): \(second.output)")
                    #expect(!isMounted(dir + "/mnt2"))
                }
                let holder = "already open for writing by pid \(daemon) (layerfs)"
                let imported = try runLayerFS(["import", storePath, dir + "/input"])
                #expect(imported.status == 75, "\(imported.output)")
                #expect(imported.output.contains(holder), "\(imported.output)")
                let sealed = try runLayerFS(["seal", storePath])
                #expect(sealed.status == 75, "\(sealed.output)")
                #expect(sealed.output.contains(holder), "\(sealed.output)")

                // The refused writers changed nothing: the daemon still holds the store and commits.
                #expect(m.process.isRunning)
                #expect(lockLine(storePath).hasPrefix("pid \(daemon) (layerfs)"), "\(lockLine(storePath))")
                #expect(FS.lstatErrno(m.mountPoint + "/file") == ENOENT, "nothing was imported")
                #expect(writeFile(m.mountPoint + "/still", Array("writable\n".utf8), fsync: false).acknowledged)
                let store = try Store.open(storePath, mode: .readOnly)
                #expect(store.blocks.isEmpty, "nothing was sealed")
                #expect(try store.read(store.stat("/still")) == Array("writable\n".utf8))
            }
        }
    }

    /// `layerfs mount ./store MNT` without -f: the daemon leaves its working directory for / once
    /// mounted, and must still reach the store's files (blobs, the block head).
    @Test func aDaemonizedMountOfARelativeStorePathReadsAndWritesBlobs() throws {
        try withScratchDirectory { (dir: String) throws in
            let storePath = dir + "/store"
            try Store.create(at: storePath, by: tester)
            let old = pattern(seed: 42, count: 200_000)
            do {  // a blob from before the mount
                let store = try Store.open(storePath, mode: .readWrite, options: Store.Options(sealPolicy: .manual))
                try store.commit(.write(path: "/old", content: old), by: tester)
                try store.close()
            }
            let mountPoint = dir + "/mnt"
            try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: false)
            // Run from the scratch directory: `store` means nothing from / (a path climbing out
            // with ../.. would, by chance, still resolve there).
            let relative = "./store"
            let mounted = try runLayerFS(["mount", relative, mountPoint, "-o", "noindex"], in: dir)
            defer { unmountRetrying(mountPoint) }
            try #require(mounted.status == 0 && isMounted(mountPoint), "\(mounted.output)")
            #expect(try mountSource(of: mountPoint) == storePath)
            #expect(FileManager.default.contents(atPath: mountPoint + "/old").map { [UInt8]($0) } == old, "a blob read by the daemon")
            let new = pattern(seed: 43, count: 300_000)
            let outcome = writeFile(mountPoint + "/new", new, fsync: true)
            #expect(outcome.acknowledged && outcome.failedCommitCall == nil, "a blob written by the daemon: \(outcome)")

            let unmount = try runProgram(findExecutable("fusermount3")!, ["-u", mountPoint])
            #expect(unmount.status == 0, "\(unmount.output)")
            let deadline = Date().addingTimeInterval(5)
            while !processes(mentioning: mountPoint).isEmpty && Date() < deadline { usleep(20_000) }
            #expect(processes(mentioning: mountPoint).isEmpty, "the daemon exited")
            try expectCleanlyClosedAndSealed(storePath)
            let store = try Store.open(storePath, mode: .readOnly)
            #expect(try store.read(store.stat("/new")) == new)
        }
    }
}

// MARK: - Stores

/// Events 1-3, none sealed: /etc, /etc/hosts "v1", /etc/motd.
private func buildUnsealedStore(_ store: Store) throws {
    _ = try store.commit(.mkdir(path: "/etc"), by: tester)
    _ = try store.commit(.write(path: "/etc/hosts", content: Array("v1\n".utf8)), by: tester)
    _ = try store.commit(.write(path: "/etc/motd", content: Array("motd\n".utf8)), by: tester)
}

/// The store's writer lock line ("" after a clean close).
private func lockLine(_ storePath: String) -> String {
    (try? String(contentsOfFile: storePath + "/metadata/writer.lock", encoding: .utf8)) ?? "<unreadable>"
}

/// After the mount ended: the writer lock is empty (a clean close), the close sealed every event
/// into a block (SealPolicy.onClose), and `status` and `verify` agree.
private func expectCleanlyClosedAndSealed(_ storePath: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
    #expect(lockLine(storePath) == "", "writer.lock after the mount ended", sourceLocation: sourceLocation)
    let store = try Store.open(storePath, mode: .readOnly)
    #expect(store.blocks.last?.last == store.headSequence, "the close sealed no block covering the head (blocks: \(store.blocks.map { "\($0.first)...\($0.last)" }), head \(store.headSequence))", sourceLocation: sourceLocation)
    #expect(store.openNotes.isEmpty, "\(store.openNotes)", sourceLocation: sourceLocation)
    let status = try runLayerFS(["status", storePath])
    #expect(status.output.contains("unsealed   0 events"), "\(status.output)", sourceLocation: sourceLocation)
    #expect(status.output.contains("writer     none\n"), "\(status.output)", sourceLocation: sourceLocation)
    let verify = try runLayerFS(["verify", storePath])
    #expect(verify.status == 0 && !verify.output.contains("warning"), "\(verify.output)", sourceLocation: sourceLocation)
}

private func runLayerFS(_ arguments: [String]) throws -> (status: Int32, output: String) {
    try runProgram(try #require(LayerFSBinary.path), arguments)
}

/// `layerfs` run in `directory`; returns (status, stdout + stderr). For commands that return
/// at once (a daemonizing mount's parent returns once the child has mounted).
private func runLayerFS(_ arguments: [String], in directory: String) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: try #require(LayerFSBinary.path))
    process.arguments = arguments
    process.currentDirectoryURL = URL(fileURLWithPath: directory)
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    process.standardInput = FileHandle.nullDevice
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// The source field of the mount on `mountPoint` in /proc/mounts.
private func mountSource(of mountPoint: String) throws -> String? {
    let text = try String(contentsOfFile: "/proc/mounts", encoding: .utf8)
    for line in text.split(separator: "\n") {
        let fields = line.split(separator: " ")
        if fields.count > 1 && fields[1] == mountPoint { return String(fields[0]) }
    }
    return nil
}

/// `path` (absolute) spelled relative to the current directory.
private func relativePath(to path: String) -> String {
    let cwd = FileManager.default.currentDirectoryPath.split(separator: "/")
    return String(repeating: "../", count: cwd.count) + path.drop(while: { $0 == "/" })
}

private let currentUmask: UInt32 = {
    let mask = umask(0o022)
    umask(mask)
    return UInt32(mask)
}()

// MARK: - Mounts and the loop filesystem

/// Mounts `storePath` on `mountPoint` (logging to `log`/mount.stderr), runs `body`, and always
/// unmounts (MountedStore.tearDown), also when `body` throws.
private func withMount<T>(_ storePath: String, on mountPoint: String, log: String, _ body: (MountedStore) throws -> T) throws -> T {
    if !FileManager.default.fileExists(atPath: log) {
        try FileManager.default.createDirectory(atPath: log, withIntermediateDirectories: true)
    }
    let m = try MountedStore(directory: log, storePath: storePath, mountPoint: mountPoint, options: [])
    let result = Result { try body(m) }
    do {
        try m.tearDown()
    } catch {
        if case .failure = result { Issue.record(error) } else { throw error }
    }
    return try result.get()
}

/// After the daemon died: the mount is dead (ENOTCONN); take it away.
private func cleanUpDeadMount(_ mountPoint: String) {
    if !unmountRetrying(mountPoint, attempts: 20) {
        Issue.record("fusermount3 -u of the dead mount failed; lazy unmount")
    }
}

/// Runs a tool that must succeed; returns its output.
@discardableResult
private func mustRun(_ tool: String, _ arguments: [String]) throws -> String {
    guard let program = findExecutable(tool) else { throw FixtureError("\(tool) not found") }
    let result = try runProgram(program, arguments)
    guard result.status == 0 else {
        throw FixtureError("`\(([tool] + arguments).joined(separator: " "))` exited \(result.status): \(result.output)")
    }
    return result.output
}

/// A fresh ext4 of `sizeMiB` on a loop device, mounted on `dir`/fs for `body`. Always torn down,
/// in defers, in this order: the filesystem is unmounted (retried while busy, lazily as a last
/// resort), then the loop device is detached. (FUSE mounts of stores on it are the body's to end,
/// before it returns.) `-m 0`: no blocks reserved for root, so root (the tests) hits ENOSPC when
/// the disk is full.
private func withLoopExt4<T>(in dir: String, sizeMiB: Int, _ body: (String) throws -> T) throws -> T {
    let image = dir + "/fs.img"
    let mountPoint = dir + "/fs"
    try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: false)
    try mustRun("truncate", ["-s", "\(sizeMiB)M", image])
    try mustRun("mkfs.ext4", ["-q", "-F", "-m", "0", image])
    let device = try mustRun("losetup", ["-f", "--show", image]).trimmingCharacters(in: .whitespacesAndNewlines)
    guard device.hasPrefix("/dev/loop") else { throw FixtureError("losetup printed \(device)") }
    defer {
        var detached = false
        for _ in 0..<20 {
            if (try? mustRun("losetup", ["-d", device])) != nil {
                detached = true
                break
            }
            usleep(100_000)
        }
        if !detached { Issue.record("could not detach \(device) (backing \(image))") }
    }
    try mustRun("mount", ["-t", "ext4", device, mountPoint])
    defer {
        var attempts = 0
        while isMounted(mountPoint) && attempts < 20 {
            if (try? mustRun("umount", [mountPoint])) == nil { usleep(100_000) }
            attempts += 1
        }
        if isMounted(mountPoint) {
            Issue.record("\(mountPoint) stayed busy; lazy unmount")
            _ = try? mustRun("umount", ["-l", mountPoint])
        }
    }
    return try body(mountPoint)
}

private func freeBytes(_ path: String) -> UInt64 {
    var st = statvfs()
    guard statvfs(path, &st) == 0 else { return 0 }
    return UInt64(st.f_bfree) * UInt64(st.f_frsize)
}

// MARK: - Files

/// Distinct content for each seed (so blobs never coincide).
private func pattern(seed: Int, count: Int) -> [UInt8] {
    var state = UInt64(truncatingIfNeeded: seed) &* 0x9E37_79B9_7F4A_7C15 &+ 1
    var bytes = [UInt8](repeating: 0, count: count)
    for i in 0..<count {
        if i % 8 == 0 {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
        }
        bytes[i] = UInt8(truncatingIfNeeded: state >> ((i % 8) * 8))
    }
    return bytes
}

/// Writes all of `bytes`; 0 or the errno.
private func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Int32 {
    var done = 0
    while done < bytes.count {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, $0.count - done) }
        if n < 0 {
            if errno == EINTR { continue }
            return errno
        }
        done += n
    }
    return 0
}

/// The errno of each step of writing a whole file (0: it succeeded; fsync nil: not called).
private struct WriteOutcome: CustomStringConvertible {
    var open: Int32 = 0
    var write: Int32 = 0
    var fsync: Int32?
    var close: Int32 = 0

    /// A commit is acknowledged by a successful fsync, or by a successful close.
    var acknowledged: Bool { open == 0 && write == 0 && (fsync == 0 || close == 0) }
    /// The first call that reported a failed commit.
    var failedCommitCall: String? {
        guard open == 0 && write == 0 else { return nil }
        if let fsync, fsync != 0 { return "fsync" }
        return close != 0 ? "close" : nil
    }
    var commitErrno: Int32 { fsync.flatMap { $0 == 0 ? nil : $0 } ?? close }
    var description: String {
        "open \(open), write \(write), fsync \(fsync.map { "\($0)" } ?? "-"), close \(close)"
    }
}

/// open(O_CREAT|O_TRUNC) + write + (fsync) + close.
private func writeFile(_ path: String, _ bytes: [UInt8], fsync sync: Bool, mode: mode_t = 0o644) -> WriteOutcome {
    var outcome = WriteOutcome()
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode)
    guard fd >= 0 else {
        outcome.open = errno
        return outcome
    }
    outcome.write = writeAll(fd, bytes)
    if sync && outcome.write == 0 { outcome.fsync = fsync(fd) == 0 ? 0 : errno }
    outcome.close = close(fd) == 0 ? 0 : errno
    return outcome
}

/// Polls (up to 5 s) until the names directly under `mountPoint` are `expected`.
private func waitForListing(_ mountPoint: String, equals expected: Set<String>) throws {
    let deadline = Date().addingTimeInterval(5)
    while Set(try FS.list(mountPoint).map { "/" + $0 }) != expected && Date() < deadline { usleep(20_000) }
}

/// The contents of every file directly under `mountPoint` equal `expected` (by name), exactly.
private func expectPresent(_ mountPoint: String, equals expected: [String: [UInt8]], sourceLocation: SourceLocation = #_sourceLocation) throws {
    let names = try FS.list(mountPoint).map { "/" + $0 }
    #expect(names == expected.keys.sorted(), "listed: \(Set(names).symmetricDifference(expected.keys).sorted())", sourceLocation: sourceLocation)
    for (name, content) in expected {
        let read = FileManager.default.contents(atPath: mountPoint + name).map { [UInt8]($0) }
        #expect(read == content, "\(name): read \(read?.count ?? -1) bytes, expected \(content.count)", sourceLocation: sourceLocation)
    }
}

// MARK: - Trees

/// One node of a present tree.
private enum TreeNode: Equatable, CustomStringConvertible {
    case directory(mode: UInt32)
    case file([UInt8], mode: UInt32)

    var description: String {
        switch self {
        case .directory(let mode): return "dir \(String(mode, radix: 8))"
        case .file(let bytes, let mode): return "file \(String(mode, radix: 8)) \(bytes.count) bytes"
        }
    }
}

/// The store's present: every path under / (not / itself).
private func presentTree(_ store: Store) throws -> [String: TreeNode] {
    var tree: [String: TreeNode] = [:]
    func walk(_ directory: String) throws {
        for entry in try store.list(directory) {
            let path = (directory == "/" ? "" : directory) + "/" + entry.name
            switch entry.info.kind {
            case .directory:
                tree[path] = .directory(mode: entry.info.mode)
                try walk(path)
            case .file: tree[path] = .file(try store.read(entry.info), mode: entry.info.mode)
            case .symlink: Issue.record("unexpected symlink \(path)")
            }
        }
    }
    try walk("/")
    return tree
}

/// The same, read through a mount.
private func mountTree(_ mountPoint: String) throws -> [String: TreeNode] {
    var tree: [String: TreeNode] = [:]
    func walk(_ directory: String) throws {
        for name in try FS.list(mountPoint + directory) {
            let path = (directory == "/" ? "" : directory) + "/" + name
            let st = try FS.lstat(mountPoint + path).get()
            if st.st_mode & S_IFMT == S_IFDIR {
                tree[path] = .directory(mode: UInt32(st.st_mode & 0o7777))
                try walk(path)
            } else {
                let bytes = try #require(FileManager.default.contents(atPath: mountPoint + path))
                tree[path] = .file([UInt8](bytes), mode: UInt32(st.st_mode & 0o7777))
            }
        }
    }
    try walk("/")
    return tree
}

private func describeDifference(_ found: [String: TreeNode], _ expected: [String: TreeNode]) -> String {
    let keys = Set(found.keys).union(expected.keys).sorted()
    return keys.filter { found[$0] != expected[$0] }.prefix(10).map {
        "\($0): found \(found[$0]?.description ?? "nothing"), acknowledged \(expected[$0]?.description ?? "nothing")"
    }.joined(separator: "; ")
}

// MARK: - Writers for the kill -9 test

/// One writer thread's stream of changes under its own directory, with the model of what the
/// acknowledged ones made. It runs until a call fails (the daemon died); that change is *in
/// flight*: it may or may not have been committed.
///
/// Thread safety: `lock` guards everything; the writer thread updates, the test reads.
private final class OperationStream: @unchecked Sendable {
    struct InFlight: CustomStringConvertible {
        var description: String
        /// The model if the change was committed.
        var after: [String: TreeNode]
    }

    let root: String
    let mountPoint: String
    /// Large files only (blobs, > 64 KiB), or a mix of small files and directory changes.
    let large: Bool
    private let lock = NSLock()
    private var _model: [String: TreeNode] = [:]
    private var _acknowledged = 0
    private var _inFlight: InFlight?
    private var _stopped = false

    init(root: String, mountPoint: String, large: Bool) {
        self.root = root
        self.mountPoint = mountPoint
        self.large = large
    }

    var model: [String: TreeNode] { lock.withLock { _model } }
    var acknowledgedCount: Int { lock.withLock { _acknowledged } }
    var inFlight: InFlight? { lock.withLock { _inFlight } }
    var stopped: Bool { lock.withLock { _stopped } }

    /// The next change: what it does, and the model after it.
    private func next(_ i: Int, _ model: [String: TreeNode]) -> (String, [String: TreeNode], () -> Bool) {
        var after = model
        let files = model.filter { if case .file = $0.value { true } else { false } }.keys.sorted()
        let directories = model.filter { if case .directory = $0.value { true } else { false } }.keys.sorted()
        let mask = currentUmask
        if i == 0 {
            after[root] = .directory(mode: 0o755 & ~mask)
            return ("mkdir \(root)", after, { mkdir(self.mountPoint + self.root, 0o755) == 0 })
        }
        if large {
            let path = "\(root)/blob-\(i)"
            let content = pattern(seed: 7_000 + i, count: 70_000 + (i * 9_973) % 200_000)
            after[path] = .file(content, mode: 0o644 & ~mask)
            let sync = i % 2 == 0
            return ("write \(path) (\(content.count) bytes\(sync ? ", fsync" : ""))", after, {
                writeFile(self.mountPoint + path, content, fsync: sync).acknowledged
            })
        }
        let kind = i % 8
        switch kind {
        case 3 where !files.isEmpty:  // rename the newest file
            let from = files.last!
            let to = "\(root)/renamed-\(i)"
            after[to] = after.removeValue(forKey: from)
            return ("rename \(from) \(to)", after, { rename(self.mountPoint + from, self.mountPoint + to) == 0 })
        case 4 where !files.isEmpty:  // chmod
            let path = files[i % files.count]
            guard case .file(let bytes, let mode) = model[path]! else { preconditionFailure() }
            let newMode: UInt32 = mode == 0o600 ? 0o640 : 0o600
            after[path] = .file(bytes, mode: newMode)
            return ("chmod \(path) \(String(newMode, radix: 8))", after, { chmod(self.mountPoint + path, mode_t(newMode)) == 0 })
        case 5 where files.count > 3:  // unlink the oldest
            let path = files.first!
            after[path] = nil
            return ("unlink \(path)", after, { unlink(self.mountPoint + path) == 0 })
        case 6 where !files.isEmpty:  // overwrite in place (O_TRUNC), closed normally
            let path = files[(i / 8) % files.count]
            guard case .file(_, let mode) = model[path]! else { preconditionFailure() }
            let content = pattern(seed: i, count: (i * 131) % 3000)
            after[path] = .file(content, mode: mode)
            return ("overwrite \(path)", after, { writeFile(self.mountPoint + path, content, fsync: false).acknowledged })
        case 2:
            let path = "\(root)/dir-\(i)"
            after[path] = .directory(mode: 0o755 & ~mask)
            return ("mkdir \(path)", after, { mkdir(self.mountPoint + path, 0o755) == 0 })
        default:  // a new file, fsynced or closed normally, sometimes in a directory made earlier
            let parent = kind == 7 && !directories.isEmpty ? directories[i % directories.count] : root
            let path = "\(parent)/file-\(i)"
            let content = pattern(seed: i, count: 1 + (i * 37) % 5000)
            after[path] = .file(content, mode: 0o644 & ~mask)
            let sync = i % 2 == 1
            return ("write \(path)\(sync ? " + fsync" : "")", after, {
                writeFile(self.mountPoint + path, content, fsync: sync).acknowledged
            })
        }
    }

    func run() {
        var i = 0
        while true {
            let (description, after, perform) = next(i, model)
            let done = perform()
            let failure = errno
            if done {
                lock.withLock {
                    _model = after
                    _acknowledged += 1
                }
            } else {
                lock.withLock {
                    _inFlight = InFlight(description: "\(description): errno \(failure)", after: after)
                    _stopped = true
                }
                return
            }
            i += 1
            if i > 100_000 { return }
        }
    }
}

/// The trees the store may hold after the kill: every stream's acknowledged changes, each with or
/// without its in-flight one. Index bit k set: stream k's in-flight change is in.
private func expectedTrees(_ streams: [OperationStream]) -> [[String: TreeNode]] {
    var trees: [[String: TreeNode]] = []
    for combination in 0..<(1 << streams.count) {
        var tree: [String: TreeNode] = [:]
        for (k, stream) in streams.enumerated() {
            let part = combination & (1 << k) != 0 ? stream.inFlight?.after ?? stream.model : stream.model
            tree.merge(part) { first, _ in first }
        }
        trees.append(tree)
    }
    return trees
}
