import Foundation
import Testing
@testable import LayerCore

/// A store on a small loop filesystem that fills up: commits fail with ENOSPC (from the write or
/// from the sync), the in-memory state shows exactly the acknowledged changes, nothing
/// acknowledged is lost, and the log still verifies; once space is freed, commits work again.
@Suite(.serialized, .enabled(if: loopBtrfsUnavailableReason == nil, "needs root, loop devices and mkfs.btrfs"))
struct NoSpaceTests {
    static let who = Provenance(uid: 0, gid: 0, pid: 1, process: "nospace-test")

    @Test func fullFilesystemFailsCommitsAndKeepsEveryAcknowledgedOne() throws {
        try withLoopBtrfs(sizeMiB: 128) { mount in
            let path = mount + "/store"
            try Store.create(at: path, by: Self.who)
            var store = try Store.open(path, options: .init(sealPolicy: .manual))
            try store.commit(.mkdir(path: "/d"), by: Self.who)
            var acknowledged: [String: [UInt8]] = [:]
            for i in 0..<20 {
                let content = Array("before \(i)\n".utf8)
                try store.commit(.write(path: "/d/before\(i)", content: content), by: Self.who)
                acknowledged["/d/before\(i)"] = content
            }

            // Fill the filesystem.
            let filler = mount + "/filler"
            let fd = open(filler, O_WRONLY | O_CREAT, 0o644)
            #expect(fd >= 0)
            let chunk = [UInt8](repeating: 0x5a, count: 1 << 20)
            while chunk.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) > 0 {}
            var small = [UInt8](repeating: 0x5a, count: 4096)
            while small.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) > 0 {}
            fsync(fd)
            close(fd)

            var failures: [LayerError] = []
            for i in 0..<300 {
                let content = Array("line \(i) ".utf8) + [UInt8](repeating: UInt8(ascii: "a") + UInt8(i % 26), count: 3000)
                do {
                    if try store.commit(.write(path: "/d/f\(i)", content: content), by: Self.who) != nil {
                        acknowledged["/d/f\(i)"] = content
                    }
                } catch {
                    failures.append(error as! LayerError)
                }
            }
            #expect(!failures.isEmpty, "the filesystem never filled up")
            for error in failures {
                #expect(error.code == .noSpace || error.code == .io, "\(error)")
            }
            #expect(failures.contains { $0.posixErrno == ENOSPC }, "no failure reported ENOSPC: \(failures.prefix(3))")

            // What the store shows is exactly what was acknowledged.
            func check(_ store: Store) throws {
                let names = try store.list("/d").map { "/d/" + $0.name }
                #expect(Set(names) == Set(acknowledged.keys))
                for (p, content) in acknowledged { #expect(try store.read(store.stat(p)) == content, "\(p)") }
            }
            try check(store)

            // Free the space: commits work again (after a reopen if the failure poisoned the store).
            unlink(filler)
            sync()
            do {
                try store.commit(.write(path: "/d/after", content: Array("after\n".utf8)), by: Self.who)
            } catch {
                #expect((error as? LayerError)?.code == .io, "\(error)")
                try store.close()
                store = try Store.open(path, options: .init(sealPolicy: .manual))
                try store.commit(.write(path: "/d/after", content: Array("after\n".utf8)), by: Self.who)
            }
            acknowledged["/d/after"] = Array("after\n".utf8)
            try check(store)
            try store.close()

            // The log on disk verifies and holds every acknowledged change.
            let reopened = try Store.open(path, mode: .readOnly)
            try check(reopened)
        }
    }
}
