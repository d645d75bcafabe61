// Real mounts of the read-write present: real tools (sh, sed, cp, tar, mv, rsync, diff) and
// syscalls, each test checking the files it sees AND the exact events the mount appended
// (Writes.swift's commit rules; DESIGN.md, "Events" and "Views and identity").
//
// Events are read by reopening the store read-only in this process (`eventsAfter`), never by a
// child process while a test holds descriptors open: a child inherits them, and its exit closes
// them, which is a FUSE flush, which commits.

import Foundation
import LayerCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

// MARK: - Helpers

/// The events after `seq`, read from the store reopened read-only (the mount keeps it open read-write).
private func eventsAfter(_ m: MountedStore, _ seq: UInt64) throws -> [Event] {
    let store = try Store.open(m.storePath, mode: .readOnly, options: Store.Options(sealPolicy: .manual))
    defer { try? store.close() }
    guard store.headSequence > seq else { return [] }
    return try (seq + 1...store.headSequence).map { try store.event($0) }
}

/// `eventsAfter`, waiting (at most 5 s) until there are at least `count`. A file only created, or
/// only emptied by open(O_TRUNC), is committed at release (Writes.swift), and the kernel sends
/// RELEASE after close(2) has returned: its event may land a moment later.
private func eventsAfter(_ m: MountedStore, _ seq: UInt64, atLeast count: Int) throws -> [Event] {
    let deadline = Date().addingTimeInterval(5)
    while true {
        let events = try eventsAfter(m, seq)
        if events.count >= count || Date() > deadline { return events }
        usleep(10_000)
    }
}

/// The store reopened read-only, for `body` (state and history after the operations).
private func withCurrentStore<T>(_ m: MountedStore, _ body: (Store) throws -> T) throws -> T {
    let store = try Store.open(m.storePath, mode: .readOnly, options: Store.Options(sealPolicy: .manual))
    defer { try? store.close() }
    return try body(store)
}

private func headSequence(_ m: MountedStore) throws -> UInt64 { try withCurrentStore(m) { $0.headSequence } }

/// `op path`, or `rename from -> to`: what a test compares event lists by.
private func summary(_ events: [Event]) -> [String] {
    events.map { e in
        e.operation == .rename ? "rename \(e.path ?? "?") -> \(e.destination ?? "?")" : "\(e.operation.rawValue) \(e.path ?? "")"
    }
}

/// An event's inline content as text (nil: none, or a blob).
private func text(_ e: Event) -> String? {
    guard case .inline(let bytes)? = e.content else { return nil }
    return String(decoding: bytes, as: UTF8.self)
}

@discardableResult
private func sh(_ script: String) throws -> (status: Int32, output: String) {
    try runProgram("/bin/sh", ["-c", script])
}

/// errno of a libc call that returns -1 on failure (0 when it succeeded).
private func errnoOf(_ result: Int32) -> Int32 { result == -1 ? errno : 0 }

/// An open descriptor, closed by `close()` or, if a test fails before that, when it goes away
/// (an fd left open keeps the mount busy, and the fixture's unmount would have to force it).
private final class Descriptor {
    let fd: Int32
    private var isOpen = true

    init(_ path: String, _ flags: Int32, _ mode: mode_t = 0o644) throws {
        fd = Glibc.open(path, flags | O_CLOEXEC, mode)
        guard fd >= 0 else { throw FixtureError("open \(path): errno \(errno)") }
    }

    /// close(2)'s result (its errno in `errno`).
    @discardableResult
    func close() -> Int32 {
        guard isOpen else { return 0 }
        isOpen = false
        return Glibc.close(fd)
    }

    deinit { if isOpen { _ = Glibc.close(fd) } }

    @discardableResult
    func write(_ string: String) throws -> Int {
        let n = Array(string.utf8).withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        guard n == string.utf8.count else { throw FixtureError("write: \(n), errno \(errno)") }
        return n
    }

    func pwrite(_ string: String, at offset: Int) throws {
        let n = Array(string.utf8).withUnsafeBytes { Glibc.pwrite(fd, $0.baseAddress, $0.count, off_t(offset)) }
        guard n == string.utf8.count else { throw FixtureError("pwrite: \(n), errno \(errno)") }
    }

    func pread(at offset: Int = 0, count: Int = 65536) throws -> String {
        var buffer = [UInt8](repeating: 0, count: count)
        let n = buffer.withUnsafeMutableBytes { Glibc.pread(fd, $0.baseAddress, count, off_t(offset)) }
        guard n >= 0 else { throw FixtureError("pread: errno \(errno)") }
        return String(decoding: buffer[0..<n], as: UTF8.self)
    }

    func stat() throws -> Glibc.stat {
        var st = Glibc.stat()
        guard fstat(fd, &st) == 0 else { throw FixtureError("fstat: errno \(errno)") }
        return st
    }
}

private func nanoseconds(_ t: timespec) -> Int64 { Int64(t.tv_sec) * 1_000_000_000 + Int64(t.tv_nsec) }

/// Writes `content` to a new or existing file with open(O_TRUNC) + write + close.
private func put(_ path: String, _ content: String) throws {
    let file = try Descriptor(path, O_WRONLY | O_CREAT | O_TRUNC)
    try file.write(content)
    guard file.close() == 0 else { throw FixtureError("close \(path): errno \(errno)") }
}

/// Failures collected from threads (reported on the test's own thread).
private final class Failures: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [String] = []
    func add(_ failure: String) { lock.withLock { list.append(failure) } }
    var all: [String] { lock.withLock { list } }
}

/// Runs `body(i)` for i in 0..<count on `count` threads of their own, all started before any is
/// waited for (blocking syscalls, so a thread pool sized to the CPUs would serialize them).
private func onThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    let group = DispatchGroup()
    for i in 0..<count {
        group.enter()
        Thread {
            body(i)
            group.leave()
        }.start()
    }
    group.wait()
}

// renameat2(2) is not in Glibc's Swift module: look it up at run time (nil if libc lacks it).
private typealias RenameAt2 = @convention(c) (Int32, UnsafePointer<CChar>, Int32, UnsafePointer<CChar>, UInt32) -> Int32
private let cRenameat2: RenameAt2? = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "renameat2").map {
    unsafeBitCast($0, to: RenameAt2.self)
}
private let renameNoReplace: UInt32 = 1  // RENAME_NOREPLACE

// <sys/xattr.h>'s removexattr, as FS does for the others.
private typealias RemoveXattr = @convention(c) (UnsafePointer<CChar>, UnsafePointer<CChar>) -> Int32
private let cRemovexattr = FS.symbol("removexattr", as: RemoveXattr.self)

private func emptyStore(_: Store) throws {}

// MARK: - Tests

@Suite(.serialized, .enabled(if: fuseUnavailableReason == nil, "real mounts: \(fuseUnavailableReason ?? "")"))
struct PresentTests {
    // 1. `>` creating, `>` truncating, `>>` appending, `: >` emptying: one write event each.
    @Test func shellRedirectionsAreOneWriteEventEach() throws {
        try withMountedStore(build: emptyStore) { (m: MountedStore, _: Store) throws in
            let f = m.mountPoint + "/f"
            var seq = try headSequence(m)
            for (script, expected) in [
                ("echo a > \(f)", "a\n"), ("echo b > \(f)", "b\n"), ("echo c >> \(f)", "b\nc\n"), (": > \(f)", ""),
                ("printf 'x\\ny\\n' >> \(f)", "x\ny\n"),
            ] {
                let result = try sh(script)
                #expect(result.status == 0 && result.output == "", "\(script): \(result.output)")
                #expect(try FS.read(f) == expected, "\(script)")
                let events = try eventsAfter(m, seq, atLeast: 1)  // `: >` commits at release
                #expect(summary(events) == ["write /f"], "\(script)")
                #expect(events.first.flatMap(text) == expected, "\(script)")
                #expect(events.first?.size == UInt64(expected.utf8.count), "\(script)")
                #expect(events.first?.mode == 0o644, "\(script)")
                #expect(events.first?.provenance.process == "sh", "\(script)")
                #expect(events.first?.provenance.uid == 0, "\(script)")
                seq += UInt64(events.count)
            }
            // The same content again changes nothing: no event.
            #expect(try sh("printf 'x\\ny\\n' > \(f)").status == 0)
            #expect(try eventsAfter(m, seq).isEmpty)
            #expect(try FS.list(m.mountPoint) == ["f"])
        }
    }

    // 2. sed -i: a temp file in the same directory, then a rename over the original.
    @Test func sedInPlaceIsATempWriteAndARename() throws {
        try withMountedStore(build: emptyStore) { (m: MountedStore, _: Store) throws in
            let f = m.mountPoint + "/notes.txt"
            let start = try headSequence(m)
            #expect(try sh("printf 'one\\ntwo\\nthree\\n' > \(f)").status == 0)
            let sed = try runProgram("/bin/sed", ["-i", "s/two/TWO/", f])
            #expect(sed.status == 0 && sed.output == "", "\(sed.output)")
            #expect(try FS.read(f) == "one\nTWO\nthree\n")
            #expect(try FS.list(m.mountPoint) == ["notes.txt"])

            let events = try eventsAfter(m, start)
            try #require(events.count == 3, "\(summary(events))")
            let temp = try #require(events[1].path)
            #expect(temp.hasPrefix("/sed") && StorePath.parent(of: temp) == "/", "\(temp)")
            #expect(summary(events) == ["write /notes.txt", "write \(temp)", "rename \(temp) -> /notes.txt"])
            #expect(text(events[1]) == "one\nTWO\nthree\n")
            #expect(events[1].mode == 0o644, "sed's fchmod of its mkstemp file is folded into the first commit")
            #expect(events[1].provenance.process == "sed" && events[2].provenance.process == "sed")

            // /@history: the original and the rename, nothing of the temp file's life.
            let history = m.mountPoint + "/@history/notes.txt"
            let names = try [canonicalTime(m, events[0].seq), canonicalTime(m, events[2].seq)]
            #expect(try FS.list(history) == names)
            #expect(try FS.read(history + "/" + names[0]) == "one\ntwo\nthree\n")
            #expect(try FS.read(history + "/" + names[1]) == "one\nTWO\nthree\n")
            #expect(try FS.list(m.mountPoint + "/@history") == ["notes.txt"])
            #expect(FS.lstatErrno(m.mountPoint + temp) == ENOENT)
        }
    }

    // 3. The editor pattern by syscalls: write a temp file, fsync, close, rename it over.
    @Test func editorPatternLeavesACleanHistory() throws {
        try withMountedStore(build: { store in
            try store.commit(.write(path: "/doc.txt", content: Array("version 1\n".utf8)), by: tester)
        }) { (m: MountedStore, store: Store) throws in
            let doc = m.mountPoint + "/doc.txt"
            let swap = m.mountPoint + "/.doc.txt.swp"
            let start = try headSequence(m)
            let fd = try Descriptor(swap, O_WRONLY | O_CREAT | O_EXCL, 0o640)
            try fd.write("version 2\n")
            #expect(try eventsAfter(m, start).isEmpty, "nothing before fsync or close")
            #expect(fsync(fd.fd) == 0)
            #expect(summary(try eventsAfter(m, start)) == ["write /.doc.txt.swp"], "durable at fsync")
            let inode = try fd.stat().st_ino
            #expect(fd.close() == 0)
            #expect(try eventsAfter(m, start).count == 1, "close after fsync has nothing left to commit")
            #expect(errnoOf(rename(swap, doc)) == 0)

            let events = try eventsAfter(m, start)
            #expect(summary(events) == ["write /.doc.txt.swp", "rename /.doc.txt.swp -> /doc.txt"])
            #expect(events.first.flatMap(text) == "version 2\n")
            #expect(events.first?.mode == 0o640)
            #expect(try FS.read(doc) == "version 2\n")
            #expect(try FS.inode(doc) == inode, "the renamed file is the same object")
            #expect(try FS.lstat(doc).get().st_mode & 0o7777 == 0o640)
            #expect(try FS.list(m.mountPoint) == ["doc.txt"])
            #expect(FS.lstatErrno(swap) == ENOENT)

            let names = try [canonicalTime(store, 1), canonicalTime(m, events[1].seq)]
            #expect(try FS.list(m.mountPoint + "/@history/doc.txt") == names)
            #expect(try FS.read(m.mountPoint + "/@history/doc.txt/" + names[0]) == "version 1\n")
            #expect(try FS.read(m.mountPoint + "/@history/doc.txt/" + names[1]) == "version 2\n")
            // The temp path: not in the present, not listed in /@history; by name, its one
            // version and its end (the rename away).
            #expect(try FS.list(m.mountPoint + "/@history") == ["doc.txt"])
            #expect(
                try FS.list(m.mountPoint + "/@history/.doc.txt.swp")
                    == [canonicalTime(m, events[0].seq), canonicalTime(m, events[1].seq) + ".deleted"])
        }
    }

    // 4. cp -a into the mount and back out: contents, modes, symlinks and mtimes survive both ways.
    @Test func cpArchiveIntoAndOutOfTheMount() throws {
        try withMountedStore(build: emptyStore) { (m: MountedStore, _: Store) throws in
            let src = m.directory + "/src"
            let out = m.directory + "/out"
            let setup = try sh(
                """
                set -e
                mkdir -p \(src)/sub/deep
                echo one > \(src)/a.txt
                printf '#!/bin/sh\\necho two\\n' > \(src)/sub/b.sh
                echo three > \(src)/sub/deep/c
                ln -s sub/b.sh \(src)/link
                chmod 644 \(src)/a.txt; chmod 755 \(src)/sub/b.sh; chmod 600 \(src)/sub/deep/c
                chmod 750 \(src)/sub; chmod 700 \(src)/sub/deep; chmod 755 \(src)
                touch -d '2002-03-04 05:06:07.5' \(src)/a.txt
                touch -d '2003-01-01 00:00:00.25' \(src)/sub/b.sh \(src)/sub/deep/c
                touch -h -d '2001-02-03 04:05:06.123456789' \(src)/link
                touch -d '2004-01-01 00:00:01.75' \(src)/sub/deep \(src)/sub \(src)
                """)
            try #require(setup.status == 0, "\(setup.output)")
            let start = try headSequence(m)
            let tree = m.mountPoint + "/tree"

            let copyIn = try runProgram("/bin/cp", ["-a", src, tree])
            #expect(copyIn.status == 0 && copyIn.output == "", "\(copyIn.output)")
            let diffIn = try runProgram("/usr/bin/diff", ["-r", "--no-dereference", src, tree])
            #expect(diffIn.status == 0 && diffIn.output == "", "\(diffIn.output)")
            let copyOut = try runProgram("/bin/cp", ["-a", tree, out])
            #expect(copyOut.status == 0 && copyOut.output == "", "\(copyOut.output)")
            let diffOut = try runProgram("/usr/bin/diff", ["-r", "--no-dereference", src, out])
            #expect(diffOut.status == 0 && diffOut.output == "", "\(diffOut.output)")

            let entries = ["", "/a.txt", "/sub", "/sub/b.sh", "/sub/deep", "/sub/deep/c", "/link"]
            for entry in entries {
                let original = try FS.lstat(src + entry).get()
                for copy in [tree + entry, out + entry] {
                    let st = try FS.lstat(copy).get()
                    #expect(st.st_mode == original.st_mode, "\(copy)")
                    #expect(nanoseconds(st.st_mtim) == nanoseconds(original.st_mtim), "mtime of \(copy)")
                    if original.st_mode & S_IFMT != S_IFDIR { #expect(st.st_size == original.st_size, "\(copy)") }
                }
            }
            #expect(try FileManager.default.destinationOfSymbolicLink(atPath: tree + "/link") == "sub/b.sh")
            #expect(try FileManager.default.destinationOfSymbolicLink(atPath: out + "/link") == "sub/b.sh")

            // The events: each entry created once (content committed once), one utimens per entry
            // with the source's mtime, and chmods of the tree's own paths only.
            let events = try eventsAfter(m, start)
            let created = events.filter { $0.operation != .utimens && $0.operation != .chmod }
            #expect(
                summary(created).sorted() == [
                    "mkdir /tree", "mkdir /tree/sub", "mkdir /tree/sub/deep", "symlink /tree/link", "write /tree/a.txt",
                    "write /tree/sub/b.sh", "write /tree/sub/deep/c",
                ])
            #expect(created.first { $0.path == "/tree/sub/b.sh" }.flatMap(text) == "#!/bin/sh\necho two\n")
            #expect(created.first { $0.path == "/tree/link" }?.target == "sub/b.sh")
            let utimens = events.filter { $0.operation == .utimens }
            #expect(utimens.count == entries.count, "\(summary(utimens))")
            for entry in entries {
                let expected = nanoseconds(try FS.lstat(src + entry).get().st_mtim)
                #expect(
                    utimens.filter { $0.path == "/tree" + entry }.map { $0.mtime?.nanoseconds } == [expected], "/tree\(entry)")
            }
            let chmods = events.filter { $0.operation == .chmod }
            #expect(chmods.allSatisfy { $0.path.map { entries.map { "/tree" + $0 }.contains($0) } ?? false }, "\(summary(chmods))")
            #expect(events.allSatisfy { $0.provenance.process == "cp" })
        }
    }

    // 5. tar of a historical time directory, extracted natively.
    @Test func tarOfATimeViewExtractsTheTreeAsItWas() throws {
        try withMountedStore(build: buildSampleStore) { (m: MountedStore, store: Store) throws in
            // At event 5: /etc/hosts "v1", /etc/motd, /a.txt, /link -> etc/hosts.
            let view = m.mountPoint + "/@time/" + (try canonicalTime(store, 5))
            let archive = m.directory + "/view.tar"
            let out = m.directory + "/extracted"
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: false)
            let create = try runProgram("/bin/tar", ["--format=posix", "-C", view, "-cf", archive, "."])
            #expect(create.status == 0 && create.output == "", "\(create.output)")
            let names = try runProgram("/bin/tar", ["-tf", archive])
            #expect(
                names.output.split(separator: "\n").sorted() == ["./", "./a.txt", "./etc/", "./etc/hosts", "./etc/motd", "./link"],
                "\(names.output)")
            let extract = try runProgram("/bin/tar", ["-C", out, "-xf", archive])
            #expect(extract.status == 0 && extract.output == "", "\(extract.output)")

            #expect(try FS.list(out) == ["a.txt", "etc", "link"])
            #expect(try FS.list(out + "/etc") == ["hosts", "motd"])
            #expect(try FS.read(out + "/etc/hosts") == "v1\n")
            #expect(try FS.read(out + "/etc/motd") == "same\n")
            #expect(try FS.read(out + "/a.txt") == "a\n")
            #expect(try FileManager.default.destinationOfSymbolicLink(atPath: out + "/link") == "etc/hosts")
            for path in ["/a.txt", "/etc", "/etc/hosts", "/etc/motd", "/link"] {
                let info = try store.stat(path, at: 5)
                let st = try FS.lstat(out + path).get()
                // pax headers carry nanoseconds; a file's mtime is its version's event time.
                #expect(nanoseconds(st.st_mtim) == info.mtime.nanoseconds, "\(path)")
                if info.kind == .file {
                    #expect(info.mtime == (try store.time(ofSequence: info.version)), "\(path)")
                    #expect(st.st_mode & 0o7777 == info.mode, "\(path)")
                }
                #expect(st.st_uid == info.uid && st.st_gid == info.gid, "\(path)")
            }
        }
    }

    // 6. mv of directories with children: the same objects at new paths.
    @Test func movingDirectoriesKeepsContentAndInodes() throws {
        try withMountedStore(build: { store in
            try store.commit(.mkdir(path: "/proj"), by: tester)
            try store.commit(.mkdir(path: "/proj/src"), by: tester)
            try store.commit(.write(path: "/proj/src/main.c", content: Array("int main;\n".utf8)), by: tester)
            try store.commit(.write(path: "/proj/README", content: Array("readme\n".utf8)), by: tester)
            try store.commit(.mkdir(path: "/archive"), by: tester)
            try store.commit(.mkdir(path: "/empty"), by: tester)
        }) { (m: MountedStore, _: Store) throws in
            let root = m.mountPoint
            let start = try headSequence(m)
            let mainInode = try FS.inode(root + "/proj/src/main.c")
            let srcInode = try FS.inode(root + "/proj/src")
            let readme = try Descriptor(root + "/proj/README", O_RDWR)
            let readmeInode = try readme.stat().st_ino

            var result = try runProgram("/bin/mv", [root + "/proj", root + "/renamed"])
            #expect(result.status == 0 && result.output == "", "\(result.output)")
            #expect(FS.lstatErrno(root + "/proj") == ENOENT)
            #expect(FS.lstatErrno(root + "/proj/src/main.c") == ENOENT)
            #expect(try FS.read(root + "/renamed/src/main.c") == "int main;\n")
            #expect(try FS.inode(root + "/renamed/src/main.c") == mainInode)
            #expect(try FS.inode(root + "/renamed/README") == readmeInode)
            // The descriptor opened before the move writes to the file at its new path.
            try readme.pwrite("README", at: 0)
            #expect(readme.close() == 0)
            #expect(try FS.read(root + "/renamed/README") == "README\n")

            result = try runProgram("/bin/mv", [root + "/renamed/src", root + "/archive/"])
            #expect(result.status == 0 && result.output == "", "\(result.output)")
            #expect(try FS.inode(root + "/archive/src") == srcInode)
            #expect(try FS.inode(root + "/archive/src/main.c") == mainInode)
            #expect(try FS.read(root + "/archive/src/main.c") == "int main;\n")
            // Over an empty directory (allowed), then back into a subdirectory.
            result = try runProgram("/bin/mv", ["-T", root + "/archive", root + "/empty"])
            #expect(result.status == 0 && result.output == "", "\(result.output)")
            result = try runProgram("/bin/mv", [root + "/empty", root + "/renamed/old"])
            #expect(result.status == 0 && result.output == "", "\(result.output)")
            #expect(try FS.inode(root + "/renamed/old/src/main.c") == mainInode)
            #expect(try FS.read(root + "/renamed/old/src/main.c") == "int main;\n")
            #expect(try FS.list(root) == ["renamed"])
            #expect(try FS.list(root + "/renamed") == ["README", "old"])

            #expect(
                summary(try eventsAfter(m, start)) == [
                    "rename /proj -> /renamed", "write /renamed/README", "rename /renamed/src -> /archive/src",
                    "rename /archive -> /empty", "rename /empty -> /renamed/old",
                ])
            try withCurrentStore(m) { (store: Store) throws in
                #expect(try store.read(store.stat("/renamed/old/src/main.c")) == Array("int main;\n".utf8))
            }
        }
    }

    // 7. ls, cat, diff and rsync across /@time, /@block and /@history.
    @Test func toolsAcrossTheHistoricalViews() throws {
        try withMountedStore(build: { store in
            try store.commit(.mkdir(path: "/docs"), by: tester)  // 1
            try store.commit(.write(path: "/docs/a", content: Array("alpha\n".utf8)), by: tester)  // 2
            try store.commit(.write(path: "/docs/b", content: Array("beta\n".utf8)), by: tester)  // 3
            try store.commit(.write(path: "/docs/same", content: Array("same\n".utf8)), by: tester)  // 4
            try store.commit(.write(path: "/top", content: Array("top\n".utf8)), by: tester)  // 5
            try store.commit(.symlink(path: "/ln", target: "docs/same"), by: tester)  // 6
            _ = try store.seal()  // block 1: 0...6
            try store.commit(.write(path: "/docs/b", content: Array("BETA!\n".utf8)), by: tester)  // 7
            try store.commit(.write(path: "/docs/c", content: Array("gamma\n".utf8)), by: tester)  // 8
            try store.commit(.unlink(path: "/top"), by: tester)  // 9
            try store.commit(.write(path: "/docs/a", content: Array("ALPHA\n".utf8)), by: tester)  // 10
        }) { (m: MountedStore, store: Store) throws in
            let t1 = try canonicalTime(store, 6)
            let t2 = try canonicalTime(store, 10)
            let times = m.mountPoint + "/@time"
            func run(_ script: String) throws -> (status: Int32, output: String) { try sh("cd \(m.mountPoint) && " + script) }

            #expect(try run("ls @time/\(t1) @time/\(t1)/docs").output == "@time/\(t1):\ndocs\nln\ntop\n\n@time/\(t1)/docs:\na\nb\nsame\n")
            #expect(try run("ls @time/\(t2)/docs").output == "a\nb\nc\nsame\n")
            #expect(try run("cat @time/\(t1)/docs/a @time/\(t2)/docs/a @time/\(t1)/ln").output == "alpha\nALPHA\nsame\n")
            #expect(try run("ls @block && cat @block/1/docs/b @block/latest/top").output == "1\nlatest\nbeta\ntop\n")
            #expect(try run("ls @history @history/docs").output == "@history:\ndocs\nln\n\n@history/docs:\na\nb\nc\nsame\n")
            #expect(try run("ls @history/docs/b").output == "\(try canonicalTime(store, 3))\n\(try canonicalTime(store, 7))\n")
            #expect(try run("cat @history/docs/b/\(try canonicalTime(store, 7))").output == "BETA!\n")
            #expect(try run("ls @history/top").output == "\(try canonicalTime(store, 5))\n\(try canonicalTime(store, 9)).deleted\n")

            // diff -r: exactly the changed files (the symlink is followed; its target did not change).
            let diff = try sh("cd \(times) && diff -r \(t1) \(t2)")
            #expect(diff.status == 1)
            #expect(
                diff.output == """
                    diff -r \(t1)/docs/a \(t2)/docs/a
                    1c1
                    < alpha
                    ---
                    > ALPHA
                    diff -r \(t1)/docs/b \(t2)/docs/b
                    1c1
                    < beta
                    ---
                    > BETA!
                    Only in \(t2)/docs: c
                    Only in \(t1): top

                    """, "\(diff.output)")
            // Between a time and the block sealed at that time: identical.
            let same = try sh("diff -r \(times)/\(t1) \(m.mountPoint)/@block/1")
            #expect(same.status == 0 && same.output == "", "\(same.output)")

            // rsync -a of T1: mtimes are the versions' event times. --modify-window=-1 makes rsync
            // compare nanoseconds: by default it compares whole seconds only, and these events all
            // lie within one second (it would then skip docs/a, changed at the same size, and leave
            // new directories and symlinks with the copy's own mtime, "equal" to the second).
            let backup = m.directory + "/backup"
            let rsync = ["-a", "--modify-window=-1"]
            let first = try runProgram("/usr/bin/rsync", rsync + [times + "/" + t1 + "/", backup + "/"])
            #expect(first.status == 0 && first.output == "", "\(first.output)")
            for path in ["/docs", "/docs/a", "/docs/b", "/docs/same", "/top", "/ln"] {
                let info = try store.stat(path, at: 6)
                let st = try FS.lstat(backup + path).get()
                #expect(nanoseconds(st.st_mtim) == info.mtime.nanoseconds, "\(path)")
                if info.kind != .directory {
                    #expect(info.mtime == (try store.time(ofSequence: info.version)), "\(path)")
                }
            }
            #expect(try FS.read(backup + "/docs/a") == "alpha\n")

            // A second rsync from T2 transfers only what changed (no --delete: /top stays).
            let second = try runProgram("/usr/bin/rsync", rsync + ["--itemize-changes", times + "/" + t2 + "/", backup + "/"])
            #expect(second.status == 0, "\(second.output)")
            var expected: [String] = []
            if try store.stat("/", at: 6).mtime != store.stat("/", at: 10).mtime { expected.append(".d..t...... ./") }
            if try store.stat("/docs", at: 6).mtime != store.stat("/docs", at: 10).mtime { expected.append(".d..t...... docs/") }
            expected += [">f..t...... docs/a", ">f.st...... docs/b", ">f+++++++++ docs/c"]
            #expect(second.output.split(separator: "\n").map(String.init) == expected, "\(second.output)")
            #expect(try FS.read(backup + "/docs/a") == "ALPHA\n")
            #expect(try FS.read(backup + "/docs/c") == "gamma\n")
            #expect(try FS.read(backup + "/top") == "top\n")
            // Nothing in the log: reading views never writes.
            #expect(try headSequence(m) == 10)
        }
    }

    // 8a. Eight threads, each writing its own file 50 times.
    @Test func concurrentWritersOfTheirOwnFiles() throws {
        try withMountedStore(build: emptyStore) { (m: MountedStore, _: Store) throws in
            let start = try headSequence(m)
            let failures = Failures()
            let root = m.mountPoint
            onThreads(8) { t in
                for i in 0..<50 {
                    let path = root + "/t\(t)"
                    let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
                    guard fd >= 0 else { return failures.add("open \(path): errno \(errno)") }
                    let line = Array("thread \(t) iteration \(i)\n".utf8)
                    let n = line.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
                    if n != line.count { failures.add("write \(path): \(n), errno \(errno)") }
                    if close(fd) != 0 { failures.add("close \(path): errno \(errno)") }
                }
            }
            #expect(failures.all == [])
            for t in 0..<8 {
                #expect(try FS.read(root + "/t\(t)") == "thread \(t) iteration 49\n")
            }
            let events = try eventsAfter(m, start)
            #expect(events.count == 400)
            #expect(events.allSatisfy { $0.operation == .write })
            for t in 0..<8 {
                let own = events.filter { $0.path == "/t\(t)" }.map { text($0) ?? "" }
                #expect(own == (0..<50).map { "thread \(t) iteration \($0)\n" }, "/t\(t)")
            }
        }
    }

    // 8b. Several threads appending to one file (each line its own open/write/close), and
    // threads rewriting their own slot of another file through descriptors open at once.
    @Test func concurrentWritersOfOneFile() throws {
        try withMountedStore(build: emptyStore) { (m: MountedStore, _: Store) throws in
            let start = try headSequence(m)
            let failures = Failures()
            let shared = m.mountPoint + "/shared.log"
            let slots = m.mountPoint + "/slots"
            try put(slots, String(repeating: ".", count: 4 * 16))
            let slotsSeq = try headSequence(m)
            onThreads(4) { t in
                for i in 0..<25 {
                    let fd = Glibc.open(shared, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
                    guard fd >= 0 else { return failures.add("open: errno \(errno)") }
                    let line = Array("writer \(t) line \(i < 10 ? "0" : "")\(i)\n".utf8)
                    let n = line.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
                    if n != line.count { failures.add("write: \(n), errno \(errno)") }
                    if close(fd) != 0 { failures.add("close: errno \(errno)") }
                }
            }
            onThreads(4) { t in
                let fd = Glibc.open(slots, O_RDWR | O_CLOEXEC)
                guard fd >= 0 else { return failures.add("open slots: errno \(errno)") }
                for round in 0..<20 {
                    // 16 bytes at t*16: "slot t round rr\n"
                    let record = Array("slot \(t) round \(round < 10 ? "0" : "")\(round)\n".utf8)
                    let n = record.withUnsafeBytes { Glibc.pwrite(fd, $0.baseAddress, $0.count, off_t(t * 16)) }
                    if n != 16 { failures.add("pwrite: \(n), errno \(errno)") }
                    if round % 5 == 4 && fsync(fd) != 0 { failures.add("fsync: errno \(errno)") }
                }
                if close(fd) != 0 { failures.add("close slots: errno \(errno)") }
            }
            #expect(failures.all == [])

            // Appends: every line once, each writer's lines in its order.
            let content = try FS.read(shared)
            let lines = content.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
            #expect(lines.count == 100)
            for t in 0..<4 {
                let own = lines.filter { $0.hasPrefix("writer \(t) ") }
                #expect(own == (0..<25).map { "writer \(t) line \($0 < 10 ? "0" : "")\($0)" }, "writer \(t)")
            }
            #expect(content.hasSuffix("\n"))
            let slotContent = try FS.read(slots)
            #expect(slotContent == (0..<4).map { "slot \($0) round 19\n" }.joined())

            // The log: only writes; every version of the appended file a prefix of the final
            // content (appends only grow it), the last one equal to it; the slots' last equal too.
            let events = try eventsAfter(m, start)
            #expect(events.allSatisfy { $0.operation == .write })
            let appends = events.filter { $0.path == "/shared.log" }
            #expect(!appends.isEmpty && appends.count <= 100)
            #expect(appends.allSatisfy { content.hasPrefix(text($0) ?? "\u{0}") })
            #expect(appends.last.flatMap(text) == content)
            let slotEvents = events.filter { $0.path == "/slots" && $0.seq > slotsSeq }
            #expect(slotEvents.last.flatMap(text) == slotContent)

            // After the unmount (done here: the scratch directory goes with the fixture; its
            // teardown then finds nothing mounted): the chain verifies, the store holds what was read.
            try m.tearDown()
            let verify = try runProgram(try #require(LayerFSBinary.path), ["verify", m.storePath])
            #expect(verify.status == 0, "\(verify.output)")
            try withCurrentStore(m) { (store: Store) throws in
                #expect(try store.read(store.stat("/shared.log")) == Array(content.utf8))
                #expect(try store.read(store.stat("/slots")) == Array(slotContent.utf8))
            }
        }
    }

    // 9a. unlink of an open file, and rename over an open file: still readable through the fd.
    @Test func unlinkedOrReplacedOpenFilesStayReadable() throws {
        try withMountedStore(build: { store in
            try store.commit(.write(path: "/keep", content: Array("keep me\n".utf8)), by: tester)
            try store.commit(.write(path: "/old", content: Array("old\n".utf8)), by: tester)
        }) { (m: MountedStore, _: Store) throws in
            let keep = m.mountPoint + "/keep"
            let start = try headSequence(m)
            // Opened without reading or stat-ing first: what the fd shows after the unlink must
            // come from the open file itself.
            let fd = try Descriptor(keep, O_RDWR)
            #expect(errnoOf(unlink(keep)) == 0)
            #expect(summary(try eventsAfter(m, start)) == ["unlink /keep"])
            #expect(try fd.pread() == "keep me\n")
            var st = try fd.stat()
            #expect(st.st_nlink == 0)
            #expect(st.st_size == 8)
            #expect(try FS.list(m.mountPoint) == ["old"])
            #expect(FS.lstatErrno(keep) == ENOENT)
            // Writes to the unlinked file are seen through it, and go nowhere.
            try fd.pwrite("KE", at: 0)
            #expect(try fd.pread() == "KEep me\n")
            try fd.pwrite("!", at: 8)
            st = try fd.stat()
            #expect(st.st_size == 9 && st.st_nlink == 0)
            // fsync commits nothing (no path to commit to), and the fd still shows what it holds,
            // also once the kernel's cached attributes (1 s) have expired and it asks again.
            #expect(fsync(fd.fd) == 0)
            usleep(1_100_000)
            #expect(try fd.stat().st_size == 9)
            #expect(try fd.pread() == "KEep me\n!")
            #expect(fd.close() == 0)
            #expect(summary(try eventsAfter(m, start)) == ["unlink /keep"])

            // The editor pattern while a reader holds the old file open.
            let old = m.mountPoint + "/old"
            let reader = try Descriptor(old, O_RDONLY)
            try put(m.mountPoint + "/new", "new\n")
            #expect(errnoOf(rename(m.mountPoint + "/new", old)) == 0)
            #expect(try reader.pread() == "old\n")
            #expect(try reader.stat().st_nlink == 0)
            #expect(try reader.stat().st_size == 4)
            #expect(reader.close() == 0)
            #expect(try FS.read(old) == "new\n")
            #expect(summary(try eventsAfter(m, start)) == ["unlink /keep", "write /new", "rename /new -> /old"])
        }
    }

    // 9b. rename's errors; none appends an event.
    @Test func renameErrors() throws {
        try withMountedStore(build: { store in
            try store.commit(.mkdir(path: "/d1"), by: tester)
            try store.commit(.mkdir(path: "/d1/sub"), by: tester)
            try store.commit(.mkdir(path: "/full"), by: tester)
            try store.commit(.write(path: "/full/x", content: Array("x\n".utf8)), by: tester)
            try store.commit(.write(path: "/file", content: Array("f\n".utf8)), by: tester)
            try store.commit(.write(path: "/other", content: Array("o\n".utf8)), by: tester)
        }) { (m: MountedStore, _: Store) throws in
            let r = m.mountPoint
            let start = try headSequence(m)
            #expect(errnoOf(rename(r + "/d1", r + "/full")) == ENOTEMPTY, "directory over a non-empty directory")
            #expect(errnoOf(rename(r + "/file", r + "/full")) == EISDIR, "file over a directory")
            #expect(errnoOf(rename(r + "/d1", r + "/file")) == ENOTDIR, "directory over a file")
            #expect(errnoOf(rename(r + "/d1", r + "/d1/sub/inner")) == EINVAL, "directory into itself")
            #expect(errnoOf(rename(r + "/missing", r + "/x")) == ENOENT)
            #expect(errnoOf(rename(r + "/file", r + "/nodir/x")) == ENOENT)
            #expect(errnoOf(rename(r + "/file", r + "/other/x")) == ENOTDIR)
            #expect(errnoOf(rename(r + "/file", r + "/@reserved")) == EPERM)
            if let renameat2 = cRenameat2 {
                let noReplace = renameat2(AT_FDCWD, r + "/file", AT_FDCWD, r + "/other", renameNoReplace)
                #expect(errnoOf(noReplace) == EEXIST, "RENAME_NOREPLACE onto an existing file")
                let exchange = renameat2(AT_FDCWD, r + "/file", AT_FDCWD, r + "/other", 2)  // RENAME_EXCHANGE
                #expect(errnoOf(exchange) == EINVAL, "RENAME_EXCHANGE is not supported")
                // ... and onto a free name it renames.
                #expect(errnoOf(renameat2(AT_FDCWD, r + "/other", AT_FDCWD, r + "/moved", renameNoReplace)) == 0)
            }
            #expect(try FS.read(r + "/file") == "f\n")
            #expect(try FS.read(r + "/full/x") == "x\n")
            #expect(summary(try eventsAfter(m, start)) == (cRenameat2 == nil ? [] : ["rename /other -> /moved"]))
        }
    }

    // 9c. What cannot be created, and what can.
    @Test func creationErrorsAndReservedNames() throws {
        try withMountedStore(build: { store in
            try store.commit(.mkdir(path: "/d"), by: tester)
            try store.commit(.write(path: "/d/x", content: Array("x\n".utf8)), by: tester)
        }) { (m: MountedStore, _: Store) throws in
            let r = m.mountPoint
            let start = try headSequence(m)
            #expect(errnoOf(rmdir(r + "/d")) == ENOTEMPTY)
            #expect(errnoOf(mkdir(r + "/d", 0o755)) == EEXIST)
            #expect(FS.openErrno(r + "/d/x", O_WRONLY | O_CREAT | O_EXCL) == EEXIST)
            #expect(errnoOf(link(r + "/d/x", r + "/d/hard")) == EPERM)
            #expect(errnoOf(mkfifo(r + "/d/fifo", 0o644)) == EPERM)
            #expect(errnoOf(mknod(r + "/d/null", S_IFCHR | 0o644, 0x103)) == EPERM)
            #expect(FS.setxattrErrno(r + "/d/x", "user.note", "1") == ENOTSUP)
            #expect(FS.setxattrErrno(r + "/d/x", "user.layerfs.seq", "1") == ENOTSUP)
            #expect(errnoOf(cRemovexattr(r + "/d/x", "user.layerfs.seq")) == ENOTSUP)
            #expect(FS.openErrno(r + "/@foo", O_WRONLY | O_CREAT) == EPERM)
            #expect(errnoOf(mkdir(r + "/@foo", 0o755)) == EPERM)
            #expect(errnoOf(symlink("d", r + "/@foo")) == EPERM)
            #expect(try FS.list(r) == ["d"])
            #expect(try eventsAfter(m, start).isEmpty)

            // "@" names below the root are ordinary names.
            #expect(FS.openErrno(r + "/d/@foo", O_WRONLY | O_CREAT | O_EXCL) == 0)
            _ = try eventsAfter(m, start, atLeast: 1)  // created, never written: committed at release
            #expect(errnoOf(mkdir(r + "/d/@dir", 0o700)) == 0)
            #expect(try FS.list(r + "/d") == ["@dir", "@foo", "x"])
            let events = try eventsAfter(m, start)
            #expect(summary(events) == ["write /d/@foo", "mkdir /d/@dir"])
            #expect(events.first?.size == 0 && events.first?.mode == 0o644)
            #expect(events.last?.mode == 0o700)
        }
    }

    // 9d. Two descriptors on one file: the reader sees the writer's data before any close.
    @Test func aReaderSeesAWritersDataBeforeClose() throws {
        try withMountedStore(build: emptyStore) { (m: MountedStore, _: Store) throws in
            let path = m.mountPoint + "/rw"
            let start = try headSequence(m)
            let writer = try Descriptor(path, O_WRONLY | O_CREAT | O_EXCL)
            try writer.write("hello")
            let reader = try Descriptor(path, O_RDONLY)
            #expect(try reader.pread() == "hello")
            try writer.write(" world")
            #expect(try reader.pread() == "hello world")
            #expect(try reader.stat().st_size == 11)
            #expect(try FS.lstat(path).get().st_size == 11)
            #expect(try eventsAfter(m, start).isEmpty, "nothing is committed before a close or fsync")
            #expect(writer.close() == 0)
            let events = try eventsAfter(m, start)
            #expect(summary(events) == ["write /rw"])
            #expect(events.first.flatMap(text) == "hello world")
            #expect(reader.close() == 0)
            #expect(try eventsAfter(m, start).count == 1, "the reader's close has nothing to commit")
        }
    }

    // 9e. truncate(2) of a closed file is an event; ftruncate of an open one is committed with its writes.
    /// Files past the staging threshold (4 MiB) live in a staging file of the store while open:
    /// sequential writes, overwrites, a hole, truncation, fsync in the middle, and a second
    /// writer of the committed file (staged again from its blob); every commit is exact, and
    /// nothing is left in metadata/staging/ once the files are closed.
    @Test func largeFilesAreStagedAndCommittedExactly() throws {
        try withMountedStore(build: emptyStore) { (m: MountedStore, _: Store) throws in
            let path = m.mountPoint + "/big.bin"
            let start = try headSequence(m)
            var model = [UInt8]()
            var generator = SystemRandomNumberGenerator()
            func random(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8.random(in: 0...255, using: &generator) } }
            func pwriteAll(_ fd: Int32, _ bytes: [UInt8], _ offset: Int) {
                let n = bytes.withUnsafeBytes { Glibc.pwrite(fd, $0.baseAddress, $0.count, off_t(offset)) }
                #expect(n == bytes.count)
                if model.count < offset + bytes.count { model += [UInt8](repeating: 0, count: offset + bytes.count - model.count) }
                model.replaceSubrange(offset..<offset + bytes.count, with: bytes)
            }
            let fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0o644)
            try #require(fd >= 0)
            for i in 0..<6 { pwriteAll(fd, random(1 << 20), i << 20) }  // 6 MiB front to back
            #expect(fsync(fd) == 0)
            pwriteAll(fd, random(100_000), 1_234_567)  // an overwrite
            pwriteAll(fd, random(10), 8 << 20)  // past the end: a hole of zeros
            #expect(ftruncate(fd, off_t(7 << 20)) == 0)
            model.removeLast(model.count - (7 << 20))
            #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == Data(model), "a reader sees the staged content")
            #expect(close(fd) == 0)
            let first = model
            // A second writer of the committed file: staged again from its blob, one overwrite.
            let again = open(path, O_RDWR | O_CLOEXEC)
            try #require(again >= 0)
            pwriteAll(again, random(4096), 5 << 20)
            #expect(close(again) == 0)

            #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == Data(model))
            #expect(try Data(contentsOf: URL(fileURLWithPath: m.mountPoint + "/@time/latest/big.bin")) == Data(model))
            let events = try eventsAfter(m, start)
            #expect(summary(events) == ["write /big.bin", "write /big.bin", "write /big.bin"])
            #expect(events.map(\.size) == [6 << 20, 7 << 20, 7 << 20])
            try withCurrentStore(m) { store in
                let history = try store.history("/big.bin").compactMap(\.info)
                #expect(try history.map { try store.read($0) }.suffix(2) == [first, model])
            }
            let staging = m.storePath + "/metadata/staging"
            #expect(((try? FileManager.default.contentsOfDirectory(atPath: staging)) ?? []).isEmpty, "no staging file left")
        }
    }

    @Test func truncateUpAndDown() throws {
        try withMountedStore(build: { store in
            try store.commit(.write(path: "/t", content: Array("hello".utf8)), by: tester)
        }) { (m: MountedStore, _: Store) throws in
            let path = m.mountPoint + "/t"
            let start = try headSequence(m)
            #expect(errnoOf(truncate(path, 8)) == 0)
            #expect(try FS.read(path) == "hello\0\0\0")
            #expect(errnoOf(truncate(path, 2)) == 0)
            #expect(try FS.read(path) == "he")
            #expect(errnoOf(truncate(path, 2)) == 0, "the same size: no event")
            var events = try eventsAfter(m, start)
            #expect(summary(events) == ["truncate /t", "truncate /t"])
            #expect(events.map(text) == ["hello\0\0\0", "he"])
            #expect(events.map(\.size) == [8, 2])

            let fd = try Descriptor(path, O_RDWR)
            #expect(ftruncate(fd.fd, 6) == 0)
            #expect(try fd.stat().st_size == 6)
            #expect(ftruncate(fd.fd, 1) == 0)
            try fd.pwrite("ey", at: 1)
            #expect(try fd.pread() == "hey")
            #expect(fd.close() == 0)
            events = try eventsAfter(m, start)
            #expect(summary(events) == ["truncate /t", "truncate /t", "write /t"])
            #expect(events.last.flatMap(text) == "hey")

            // open(O_TRUNC) and close without writing: one event, the empty file.
            let emptied = try Descriptor(path, O_WRONLY | O_TRUNC)
            #expect(emptied.close() == 0)
            #expect(try FS.read(path) == "")
            events = try eventsAfter(m, start, atLeast: 4)  // at release
            #expect(summary(events).count == 4)
            #expect(events.last?.operation == .write && events.last?.size == 0)
        }
    }

    // 9f. chmod, chown and utimens are events; user.layerfs.seq names the latest one.
    @Test func attributeChangesAreEventsAndTheSeqXattrFollows() throws {
        try withMountedStore(build: emptyStore) { (m: MountedStore, _: Store) throws in
            let path = m.mountPoint + "/a"
            let start = try headSequence(m)
            try put(path, "content\n")
            let written = try #require(try eventsAfter(m, start).last)
            #expect(FS.getxattr(path, "user.layerfs.seq") == .success(String(written.seq)))
            #expect(FS.getxattr(path, "user.layerfs.hash") == .success(written.hash.hex))
            #expect(FS.getxattr(path, "user.layerfs.uid") == .success("0"))

            #expect(errnoOf(chmod(path, 0o600)) == 0)
            #expect(errnoOf(chmod(path, 0o600)) == 0, "unchanged: no event")
            #expect(errnoOf(chown(path, 1234, 5678)) == 0)
            #expect(errnoOf(chown(path, UInt32.max, 42)) == 0, "group only")
            var times = [timespec(tv_sec: 1_000_000_000, tv_nsec: 123_456_789), timespec(tv_sec: 1_000_000_000, tv_nsec: 123_456_789)]
            #expect(errnoOf(utimensat(AT_FDCWD, path, &times, 0)) == 0)
            let mkdirResult = errnoOf(mkdir(m.mountPoint + "/dir", 0o755))
            #expect(mkdirResult == 0)
            #expect(errnoOf(chmod(m.mountPoint + "/dir", 0o711)) == 0)

            let st = try FS.lstat(path).get()
            #expect(st.st_mode & 0o7777 == 0o600)
            #expect(st.st_uid == 1234 && st.st_gid == 42)
            #expect(nanoseconds(st.st_mtim) == 1_000_000_000_123_456_789)
            #expect(try FS.lstat(m.mountPoint + "/dir").get().st_mode & 0o7777 == 0o711)

            let events = try eventsAfter(m, start)
            #expect(summary(events) == ["write /a", "chmod /a", "chown /a", "chown /a", "utimens /a", "mkdir /dir", "chmod /dir"])
            #expect(events[1].mode == 0o600)
            #expect(events[2].owner == 1234 && events[2].group == 5678)
            #expect(events[3].owner == nil && events[3].group == 42)
            #expect(events[4].mtime?.nanoseconds == 1_000_000_000_123_456_789)
            #expect(events.allSatisfy { $0.provenance.uid == 0 })
            // The present file's provenance is its latest event's.
            #expect(FS.getxattr(path, "user.layerfs.seq") == .success(String(events[4].seq)))
            #expect(FS.getxattr(path, "user.layerfs.hash") == .success(events[4].hash.hex))
            // Directories carry none.
            #expect(FS.getxattr(m.mountPoint + "/dir", "user.layerfs.seq") == .failure(SysError(ENODATA)))
        }
    }

    // 10. The changes MountTests.everyChangeIsEROFS does not try, in every kind of view.
    @Test func everyOtherChangeInTheViewsIsEROFS() throws {
        try withMountedStore(build: buildSampleStore) { (m: MountedStore, store: Store) throws in
            let r = m.mountPoint
            let start = try headSequence(m)
            for root in [r + "/@time/" + (try canonicalTime(store, 5)), r + "/@block/1", r + "/@time/latest"] {
                #expect(errnoOf(rmdir(root + "/etc")) == EROFS, "\(root)")
                #expect(errnoOf(symlink("x", root + "/etc/l")) == EROFS, "\(root)")
                #expect(errnoOf(truncate(root + "/etc/hosts", 0)) == EROFS, "\(root)")
                #expect(errnoOf(chown(root + "/etc/hosts", 1, 1)) == EROFS, "\(root)")
                #expect(errnoOf(utimensat(AT_FDCWD, root + "/etc/hosts", nil, 0)) == EROFS, "\(root)")
                #expect(errnoOf(mkfifo(root + "/etc/fifo", 0o644)) == EROFS, "\(root)")
                #expect(errnoOf(mknod(root + "/etc/reg", S_IFREG | 0o644, 0)) == EROFS, "\(root)")
                #expect(errnoOf(cRemovexattr(root + "/etc/hosts", "user.layerfs.seq")) == EROFS, "\(root)")
                #expect(errnoOf(rename(root + "/etc", root + "/etc2")) == EROFS, "\(root)")
                #expect(errnoOf(chmod(root + "/etc", 0o700)) == EROFS, "\(root)")
            }
            // The @ directories themselves and /@history's directories.
            for directory in ["/@time", "/@block", "/@history", "/@history/etc", "/@history/etc/hosts"] {
                #expect(FS.openErrno(r + directory + "/new", O_WRONLY | O_CREAT) == EROFS, "\(directory)")
                #expect(errnoOf(mkdir(r + directory + "/new", 0o755)) == EROFS, "\(directory)")
                #expect(errnoOf(symlink("x", r + directory + "/new")) == EROFS, "\(directory)")
            }
            #expect(errnoOf(rmdir(r + "/@history/etc")) == EROFS)
            #expect(errnoOf(rename(r + "/@history/etc/hosts", r + "/@history/etc/h2")) == EROFS)
            #expect(errnoOf(unlink(r + "/@history/a.txt/" + (try canonicalTime(store, 7)) + ".deleted")) == EROFS)
            #expect(errnoOf(rename(r + "/etc", r + "/@history/etc2")) == EROFS)
            #expect(try eventsAfter(m, start).isEmpty)
        }
    }
}

/// The canonical time of event `seq` in the mounted store (reopened: the mount appended it).
private func canonicalTime(_ m: MountedStore, _ seq: UInt64) throws -> String {
    try withCurrentStore(m) { try $0.time(ofSequence: seq).canonical }
}
