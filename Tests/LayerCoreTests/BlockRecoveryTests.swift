import Foundation
import Testing
@testable import LayerCore

/// A crash while a block header is appended leaves a torn last line in blocks.jsonl. It was never
/// acknowledged (seal returns after the header is durable, and only then is metadata/current_block
/// updated), so like a torn event it is moved aside by the next writer and ignored by readers; a
/// complete but altered header, or a torn one the block head names, is damage.
@Suite struct BlockRecoveryTests {
    @Test func tornBlockHeaderIsMovedAsideAtEveryCut() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/store"
            try Store.create(at: path, by: tester)
            do {
                let store = try Store.open(path, options: .init(sealPolicy: .manual))
                try store.put("/a", "one\n")
                try store.seal()
                try FileManager.default.copyItem(atPath: path + "/metadata/current_block", toPath: dir + "/block-head-1")
                try store.put("/a", "two\n")
                try store.seal()
                try store.close()
            }
            let blocksFile = path + "/blocks.jsonl"
            let full = try Array(Data(contentsOf: URL(fileURLWithPath: blocksFile)))
            let firstEnd = full.firstIndex(of: UInt8(ascii: "\n"))! + 1
            // Cut inside the second line, including just before its LF.
            for cut in stride(from: firstEnd + 1, to: full.count, by: 17) + [full.count - 1] {
                // A crash mid-append: the block head still names block 1.
                try Data(full[0..<cut]).write(to: URL(fileURLWithPath: blocksFile))
                try? FileManager.default.removeItem(atPath: path + "/metadata/current_block")
                try FileManager.default.copyItem(atPath: dir + "/block-head-1", toPath: path + "/metadata/current_block")
                let recovered = path + "/metadata/recovered"
                try? FileManager.default.removeItem(atPath: recovered)

                let reader = try Store.open(path, mode: .readOnly)
                #expect(reader.blocks.count == 1)
                #expect(try Array(Data(contentsOf: URL(fileURLWithPath: blocksFile))) == Array(full[0..<cut]), "a reader changed blocks.jsonl")

                let writer = try Store.open(path, options: .init(sealPolicy: .manual))
                #expect(writer.blocks.count == 1)
                let saved = try FileManager.default.contentsOfDirectory(atPath: recovered)
                #expect(saved.count == 1 && saved[0].hasPrefix("blocks-tail-"))
                #expect(try Array(Data(contentsOf: URL(fileURLWithPath: recovered + "/" + saved[0]))) == Array(full[firstEnd..<cut]))
                #expect(try Array(Data(contentsOf: URL(fileURLWithPath: blocksFile))) == Array(full[0..<firstEnd]))
                let again = try #require(try writer.seal())
                #expect(again.number == 2 && again.first == 2)
                try writer.close()
                #expect(try Store.open(path, mode: .readOnly).blocks.count == 2)
            }
        }
    }

    @Test func tornBlockHeaderNamedByTheBlockHeadIsDamage() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/store"
            try Store.create(at: path, by: tester)
            let store = try Store.open(path, options: .init(sealPolicy: .manual))
            try store.put("/a", "one\n")
            try store.seal()
            try store.close()
            let blocksFile = path + "/blocks.jsonl"
            let bytes = try Array(Data(contentsOf: URL(fileURLWithPath: blocksFile)))
            try Data(bytes.dropLast()).write(to: URL(fileURLWithPath: blocksFile))  // the LF of block 1
            let error = try #require(throws: LayerError.self) { try Store.open(path, options: .init(sealPolicy: .manual)) }
            #expect(error.code == .corrupt)
            #expect(error.message.hasPrefix("block 1:"))
            #expect(try Array(Data(contentsOf: URL(fileURLWithPath: blocksFile))) == Array(bytes.dropLast()), "a refused open changed blocks.jsonl")
        }
    }

    @Test func alteredCompleteBlockHeaderIsDamage() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/store"
            try Store.create(at: path, by: tester)
            let store = try Store.open(path, options: .init(sealPolicy: .manual))
            try store.put("/a", "one\n")
            try store.seal()
            try store.close()
            let blocksFile = path + "/blocks.jsonl"
            var bytes = try Array(Data(contentsOf: URL(fileURLWithPath: blocksFile)))
            bytes[bytes.count - 10] ^= 0x01
            try Data(bytes).write(to: URL(fileURLWithPath: blocksFile))
            #expect(throws: LayerError.self) { try Store.open(path, mode: .readOnly) }
            let error = try #require(throws: LayerError.self) { try Store.open(path, options: .init(sealPolicy: .manual)) }
            #expect(error.code == .corrupt)
            #expect(error.message.contains("block 1"))
        }
    }
}
