import Foundation
import Testing
@testable import LayerCore

@Suite struct StoreBasicsTests {
    @Test func createWriteReadReopen() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/store"
            try Store.create(at: path, by: tester)
            do {
                let store = try Store.open(path, options: .init(sealPolicy: .manual))
                try store.commit(.mkdir(path: "/etc"), by: tester)
                let s1 = try #require(try store.put("/etc/hosts", "127.0.0.1 localhost\n"))
                try store.put("/etc/hosts", "127.0.0.1 localhost\n::1 localhost\n")
                #expect(try store.put("/etc/hosts", "127.0.0.1 localhost\n::1 localhost\n") == nil)
                #expect(try store.text("/etc/hosts", at: s1) == "127.0.0.1 localhost\n")
                #expect(try store.list("/etc").map(\.name) == ["hosts"])
                let header = try #require(try store.seal())
                #expect(header.first == 0 && header.last == 3)
                try store.close()
            }
            let again = try Store.open(path, mode: .readOnly)
            #expect(again.headSequence == 3)
            #expect(try again.text("/etc/hosts") == "127.0.0.1 localhost\n::1 localhost\n")
            #expect(again.blocks.count == 1)
        }
    }

    /// The store holds every version ever written (also of files later made private, or deleted):
    /// it is root's alone, mode 0700, whatever the umask or the mode of an empty directory given.
    @Test func storeDirectoryIsPrivate() throws {
        try withTemporaryDirectory { dir in
            let old = umask(0o022)
            defer { umask(old) }
            try Store.create(at: dir + "/new", by: tester)
            try FileManager.default.createDirectory(atPath: dir + "/given", withIntermediateDirectories: false)
            #expect(chmod(dir + "/given", 0o777) == 0)
            try Store.create(at: dir + "/given", by: tester)
            for store in [dir + "/new", dir + "/given"] {
                var st = stat()
                #expect(stat(store, &st) == 0)
                #expect(st.st_mode & 0o7777 == 0o700, "\(store): \(String(st.st_mode & 0o7777, radix: 8))")
            }
        }
    }
}
