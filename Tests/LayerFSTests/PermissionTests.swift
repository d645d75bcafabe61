// Who may read history through a mount: every @ view shows a version with the mode, owner and
// group it had, and the kernel (default_permissions, always on) checks them, so a version that
// was private stays private after a chmod, a chown or a deletion. The unprivileged reads run in a
// child that switches to nobody (uid/gid 65534) with setpriv (util-linux).
//
// docs/SECURITY.md describes the model these tests check.

import Foundation
import LayerCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

private let root = Provenance(uid: 0, gid: 0, pid: 1, process: "root-writer")
private let nobodyID = "65534"

/// What nobody (uid and gid 65534, no supplementary groups) gets from `tool arguments...`.
private func asNobody(_ tool: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
    let setpriv = try #require(findExecutable("setpriv"))
    let program = try #require(findExecutable(tool))
    return try runProgram(setpriv, ["--reuid=\(nobodyID)", "--regid=\(nobodyID)", "--clear-groups", program] + arguments)
}

/// Checks nobody is refused (EACCES: "Permission denied") when reading a file / listing a directory.
private func expectDenied(_ tool: String, _ path: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let (status, output) = try asNobody(tool, [path])
    #expect(status != 0 && output.contains("Permission denied"), "nobody: \(tool) \(path) -> \(status): \(output)", sourceLocation: sourceLocation)
}

/// Checks nobody can read a file and gets `expected`.
private func expectReadable(_ path: String, _ expected: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let (status, output) = try asNobody("cat", [path])
    #expect(status == 0 && output == expected, "nobody: cat \(path) -> \(status): \(output)", sourceLocation: sourceLocation)
}

private struct Timeline {
    var privateWrite: UInt64 = 0  // /secret.txt written 0600 by root
    var beforeChanges: UInt64 = 0  // last event before any chmod/chown/unlink
    var block: UInt64 = 0
}

/// The history: private things written by root, sealed, then opened up, handed over or deleted.
private func buildPrivateHistory(_ store: Store, _ t: inout Timeline) throws {
    _ = try store.commit(.mkdir(path: "/pub", mode: 0o755), by: root)
    _ = try store.commit(.write(path: "/pub/open.txt", content: Array("OPEN-1\n".utf8), mode: 0o644), by: root)
    t.privateWrite = try #require(try store.commit(.write(path: "/secret.txt", content: Array("SECRET-1\n".utf8), mode: 0o600), by: root))
    _ = try store.commit(.write(path: "/deleted.txt", content: Array("DELETED-SECRET\n".utf8), mode: 0o600), by: root)
    _ = try store.commit(.write(path: "/handover.txt", content: Array("ROOT-ONLY\n".utf8), mode: 0o600), by: root)
    _ = try store.commit(.mkdir(path: "/private", mode: 0o700), by: root)
    _ = try store.commit(.write(path: "/private/inner.txt", content: Array("INNER-1\n".utf8), mode: 0o644), by: root)
    _ = try store.commit(.mkdir(path: "/gone", mode: 0o700), by: root)
    t.beforeChanges = try #require(try store.commit(.write(path: "/gone/f.txt", content: Array("GONE-1\n".utf8), mode: 0o644), by: root))
    t.block = try #require(try store.seal()).number
    // Now everything is opened up, handed to nobody, or deleted.
    _ = try store.commit(.chmod(path: "/secret.txt", mode: 0o644), by: root)
    _ = try store.commit(.write(path: "/secret.txt", content: Array("PUBLIC-2\n".utf8), mode: 0o644), by: root)
    _ = try store.commit(.unlink(path: "/deleted.txt"), by: root)
    _ = try store.commit(.chown(path: "/handover.txt", owner: 65534, group: 65534), by: root)
    _ = try store.commit(.unlink(path: "/gone/f.txt"), by: root)
    _ = try store.commit(.rmdir(path: "/gone"), by: root)
}

@Suite(.serialized, .enabled(if: fuseUnavailableReason == nil, "real mounts: \(fuseUnavailableReason ?? "")"),
    .enabled(if: findExecutable("setpriv") != nil, "setpriv (util-linux) is needed to read as nobody"))
struct PermissionTests {
    @Test func oldPrivateVersionsStayPrivateInEveryView() throws {
        var t = Timeline()
        try withMountedStore(options: ["-o", "allow_other"], build: { try buildPrivateHistory($0, &t) }) { (m: MountedStore, store: Store) throws in
            #expect(chmod(m.directory, 0o755) == 0)  // nobody must be able to reach the mount point
            let mnt = m.mountPoint
            let time = try store.time(ofSequence: t.beforeChanges).canonical
            let written = try store.time(ofSequence: t.privateWrite).canonical
            let handoverWrite = try #require(store.history("/handover.txt").first?.seq)
            let deletedWrite = try #require(store.history("/deleted.txt").first?.seq)
            let innerWrite = try #require(store.history("/private/inner.txt").first?.seq)
            let goneWrite = try #require(store.history("/gone/f.txt").first?.seq)
            func versionName(_ seq: UInt64) throws -> String { try store.time(ofSequence: seq).canonical }

            // Controls: with allow_other nobody reads what was and is readable to all, so a
            // refusal below is the permission check, not the mount refusing nobody.
            try expectReadable(mnt + "/pub/open.txt", "OPEN-1\n")
            try expectReadable(mnt + "/secret.txt", "PUBLIC-2\n")
            try expectReadable(mnt + "/handover.txt", "ROOT-ONLY\n")  // nobody owns it now
            try expectReadable("\(mnt)/@time/\(time)/pub/open.txt", "OPEN-1\n")
            try expectReadable("\(mnt)/@block/\(t.block)/pub/open.txt", "OPEN-1\n")
            let secretVersions = try FS.list(mnt + "/@history/secret.txt")
            #expect(secretVersions.count == 3, "\(secretVersions)")  // write, chmod, write
            try expectReadable("\(mnt)/@history/secret.txt/\(try #require(secretVersions.last))", "PUBLIC-2\n")
            // The version after the chmod has the same content, now 0644: readable, as it was then.
            try expectReadable("\(mnt)/@history/secret.txt/\(secretVersions[1])", "SECRET-1\n")
            try expectDenied("cat", mnt + "/private/inner.txt")

            // A file that was 0600 root's, later made 0644 / deleted / given to nobody: its old
            // version is refused in every view.
            for view in ["@time/\(time)", "@block/\(t.block)", "@block/latest"] {
                for file in ["secret.txt", "deleted.txt", "handover.txt"] {
                    try expectDenied("cat", "\(mnt)/\(view)/\(file)")
                }
                // A 0700 directory of root: not listable, and what is in it is not reachable.
                try expectDenied("ls", "\(mnt)/\(view)/private")
                try expectDenied("cat", "\(mnt)/\(view)/private/inner.txt")
                try expectDenied("ls", "\(mnt)/\(view)/gone")
                try expectDenied("cat", "\(mnt)/\(view)/gone/f.txt")
            }
            try expectDenied("cat", "\(mnt)/@history/secret.txt/\(written)")
            try expectDenied("cat", "\(mnt)/@history/deleted.txt/\(try versionName(deletedWrite))")
            try expectDenied("cat", "\(mnt)/@history/handover.txt/\(try versionName(handoverWrite))")
            // @history mirrors directories with their modes: /private (0700 root, still) and
            // /gone (0700 root when it was removed) cannot be listed or searched.
            try expectDenied("ls", "\(mnt)/@history/private")
            try expectDenied("cat", "\(mnt)/@history/private/inner.txt/\(try versionName(innerWrite))")
            try expectDenied("ls", "\(mnt)/@history/gone")
            try expectDenied("cat", "\(mnt)/@history/gone/f.txt/\(try versionName(goneWrite))")

            // The views show the historical attributes themselves.
            let old = try FS.lstat("\(mnt)/@time/\(time)/secret.txt").get()
            #expect(old.st_mode & 0o7777 == 0o600 && old.st_uid == 0 && old.st_gid == 0)
            let oldDirectory = try FS.lstat("\(mnt)/@history/private").get()
            #expect(oldDirectory.st_mode & 0o7777 == 0o700 && oldDirectory.st_uid == 0)
            // Root (the mounting user) still reads everything.
            #expect(try FS.read("\(mnt)/@history/secret.txt/\(written)") == "SECRET-1\n")
            #expect(try FS.read("\(mnt)/@time/\(time)/private/inner.txt") == "INNER-1\n")
        }
    }

    @Test func similarResultsFollowIntoViewsThatCheckTheVersionsMode() throws {
        var t = Timeline()
        try withMountedStore(options: ["-o", "allow_other"], build: { try buildPrivateHistory($0, &t) }) { (m: MountedStore, store: Store) throws in
            #expect(chmod(m.directory, 0o755) == 0)
            let query = m.mountPoint + "/@similar/SECRET#20"
            let deadline = Date().addingTimeInterval(20)
            var names: [String] = []
            while Date() < deadline {
                names = (try? FS.list(query)) ?? []
                if names.contains(where: { $0.contains("deleted.txt") }) { break }
                usleep(100_000)
            }
            let deleted = try #require(names.first(where: { $0.contains("deleted.txt") }), "\(names)")
            #expect(try FS.read(query + "/" + deleted) == "DELETED-SECRET\n")  // root follows the link
            try expectDenied("cat", query + "/" + deleted)
        }
    }

    @Test func withoutAllowOtherOnlyTheMountingUserGetsIn() throws {
        var t = Timeline()
        try withMountedStore(build: { try buildPrivateHistory($0, &t) }) { (m: MountedStore, store: Store) throws in
            #expect(chmod(m.directory, 0o755) == 0)
            #expect(try FS.read(m.mountPoint + "/pub/open.txt") == "OPEN-1\n")
            try expectDenied("cat", m.mountPoint + "/pub/open.txt")
            try expectDenied("ls", m.mountPoint + "/@time/latest")
        }
    }
}
