import Foundation
import Testing

@testable import LayerCore

/// Large files written through a staging file (`Store.stage`, `Change.writeStaged`).
@Suite struct StagedContentTests {
    @Test func stagedContentCommitsAsABlobAndStaysUsable() throws {
        try withTemporaryDirectory { (dir: String) throws in
            let store = try ContentReaderTests.makeStore(dir)
            defer { try? store.close() }
            let first = ContentReaderTests.randomBytes(3 << 20)
            let staged = try store.stage()
            try first.withUnsafeBytes { try staged.write($0, at: 0) }  // front to back: the running hash
            let seq1 = try #require(try store.commit(.writeStaged(path: "/big", content: staged, mode: 0o600), by: tester))
            let v1 = try store.stat("/big")
            #expect(v1.size == UInt64(first.count) && v1.mode == 0o600)
            #expect(try store.read(v1) == first)  // verifies the blob's hash
            guard case .object = try store.event(seq1).content else {
                Issue.record("a 3 MiB file is not a blob")
                return
            }
            // The same content again: no event.
            #expect(try store.commit(.writeStaged(path: "/big", content: staged), by: tester) == nil)
            // The staging file is still the working copy: an overwrite (the hash is read again).
            var second = first
            let patch = ContentReaderTests.randomBytes(1000)
            second.replaceSubrange(100..<1100, with: patch)
            try patch.withUnsafeBytes { try staged.write($0, at: 100) }
            try store.commit(.writeStaged(path: "/big", content: staged), by: tester)
            let v2 = try store.stat("/big")
            #expect(try store.read(v2) == second && v2.mode == 0o600)
            #expect(try store.read(v1) == first)  // the old version is untouched
            // Staged from a committed version: a copy of its blob, then cut short (inline).
            let copy = try store.stage(from: v2)
            #expect(copy.size == v2.size)
            try copy.truncate(to: 10)
            try store.commit(.writeStaged(path: "/small", content: copy), by: tester)
            let small = try store.stat("/small")
            #expect(try store.read(small) == Array(second.prefix(10)))
            guard case .inline = try store.event(small.contentSeq).content else {
                Issue.record("10 bytes are not inline")
                return
            }
        }
    }

    @Test func stagingFilesGoWithTheirObjectAndLeftoversWithTheNextWriter() throws {
        try withTemporaryDirectory { (dir: String) throws in
            let staging = dir + "/store/metadata/staging"
            do {
                let store = try ContentReaderTests.makeStore(dir)
                var staged: StagedContent? = try store.stage()
                #expect(try FileManager.default.contentsOfDirectory(atPath: staging).count == 1)
                staged = nil
                _ = staged
                #expect(try FileManager.default.contentsOfDirectory(atPath: staging).isEmpty)
                try store.close()
            }
            // A leftover (a writer that died) is removed when the store is next opened for writing.
            FileManager.default.createFile(atPath: staging + "/leftover", contents: Data([1, 2, 3]))
            let store = try Store.open(dir + "/store", options: .init(sealPolicy: .manual))
            defer { try? store.close() }
            #expect(try FileManager.default.contentsOfDirectory(atPath: staging).isEmpty)
        }
    }
}
