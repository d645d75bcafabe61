import Foundation
import Testing

@testable import LayerCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

private let sealer = Provenance(uid: 0, gid: 0, pid: 4243, process: "sealing-test")

private func bytes(_ path: String) throws -> [UInt8] {
    guard let data = FileManager.default.contents(atPath: path) else { throw HarnessError("cannot read \(path)") }
    return [UInt8](data)
}

/// The first `count` lines of `bytes`, newlines included.
private func firstLines(_ bytes: [UInt8], _ count: Int) -> [UInt8] {
    var seen = 0
    for (i, b) in bytes.enumerated() where b == UInt8(ascii: "\n") {
        seen += 1
        if seen == count { return Array(bytes[...i]) }
    }
    return bytes
}

private func errnoOfOpeningForWriting(_ path: String, create: Bool = false) -> Int32 {
    let fd = open(path, O_WRONLY | O_CLOEXEC | (create ? O_CREAT : 0), 0o644)
    if fd == -1 { return errno }
    close(fd)
    return 0
}

/// Polls `condition` every few milliseconds until it holds or `seconds` pass; returns whether it held.
private func eventually(within seconds: Double, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if try condition() { return true }
        usleep(5_000)
    }
    return try condition()
}

private func write(_ store: Store, _ path: String, _ text: String) throws {
    try store.commit(.write(path: path, content: Array(text.utf8)), by: sealer)
}

/// Sealing on a real btrfs: the store is a subvolume, each block a read-only snapshot.
@Suite(
    .serialized,
    .enabled(
        if: loopBtrfsUnavailableReason == nil,
        "needs root, /dev/loop-control, mkfs.btrfs and losetup: see loopBtrfsUnavailableReason"))
struct SealingTests {
    /// Checks the snapshot of `header`: a read-only subvolume whose log starts with events
    /// 0...header.last of the store, whose blocks are the store's first `header.number`, and which
    /// opens as a store itself.
    private static func checkSnapshot(of header: BlockHeader, store path: String, log: [UInt8], blocks: [UInt8]) throws {
        let snapshot = Store.snapshotsPath(path) + "/" + header.snapshotName
        #expect(header.snapshotName == "block-\(header.number)-\(header.hash.hex.prefix(12))")
        #expect(try Btrfs.isSubvolume(snapshot), "\(snapshot) is a subvolume")
        #expect(try Btrfs.isReadOnly(snapshot), "\(snapshot) is read-only")
        let sealed = firstLines(log, Int(header.last) + 1)
        #expect(try bytes(snapshot + "/events.jsonl").starts(with: sealed), "the snapshot holds events 0...\(header.last)")
        #expect(try bytes(snapshot + "/blocks.jsonl") == firstLines(blocks, Int(header.number)), "and blocks 1...\(header.number)")
        #expect(errnoOfOpeningForWriting(snapshot + "/events.jsonl") == EROFS)
        #expect(errnoOfOpeningForWriting(snapshot + "/new", create: true) == EROFS)
        // The snapshot is a store as of the seal (taken while the writer held the lock).
        let old = try Store.open(snapshot, mode: .readOnly)
        #expect(old.headSequence >= header.last)
        #expect(old.blocks.last == header)
    }

    @Test func createMakesASubvolumeAndEachSealASnapshot() throws {
        var mountPoint = ""
        try withLoopBtrfs { mount in
            mountPoint = mount
            let path = mount + "/store"
            try Store.create(at: path, by: sealer)
            #expect(try Btrfs.isSubvolume(path))
            #expect(FileManager.default.fileExists(atPath: Store.snapshotsPath(path)))

            var headers: [BlockHeader] = []
            do {
                let store = try Store.open(path, options: .init(sealPolicy: .manual))
                #expect(store.isBtrfsSubvolume)
                try store.commit(.mkdir(path: "/etc"), by: sealer)
                for i in 0..<5 { try write(store, "/etc/f\(i)", "first block \(i)\n") }
                let first = try #require(try store.seal())
                #expect(first.number == 1 && first.first == 0 && first.last == 6 && first.count == 7)
                headers.append(first)
                #expect(try store.seal() == nil, "nothing new to seal")

                for i in 0..<4 { try write(store, "/etc/f\(i)", "second block \(i)\n") }
                let second = try #require(try store.seal())
                #expect(second.number == 2 && second.first == 7 && second.last == 10)
                #expect(second.previousHash == first.hash)
                headers.append(second)
                try write(store, "/etc/after", "unsealed\n")
                #expect(store.unsealedCount == 1)
                try store.close()
            }
            let log = try bytes(Store.eventsPath(path))
            let blocks = try bytes(path + "/blocks.jsonl")
            for header in headers { try Self.checkSnapshot(of: header, store: path, log: log, blocks: blocks) }
            let names = try FileManager.default.contentsOfDirectory(atPath: Store.snapshotsPath(path)).sorted()
            #expect(names == headers.map(\.snapshotName).sorted())

            // Reopening verifies the log against both blocks.
            let reader = try Store.open(path, mode: .readOnly)
            #expect(reader.blocks == headers)
            #expect(reader.headSequence == 11 && reader.unsealedCount == 1)
            #expect(reader.openNotes.isEmpty, "\(reader.openNotes)")
        }
        #expect(try !currentMountPoints().contains(mountPoint), "the loop btrfs is unmounted")
        #expect(!FileManager.default.fileExists(atPath: mountPoint))
    }

    @Test func everyTenEventsSealsInTheBackground() throws {
        var mountPoint = ""
        try withLoopBtrfs { mount in
            mountPoint = mount
            let path = mount + "/store"
            try Store.create(at: path, by: sealer)
            let policy = SealPolicy(everyEvents: 10, everySeconds: nil, onClose: false)
            let commits = 60
            var headers: [BlockHeader] = []
            do {
                let store = try Store.open(path, options: .init(sealPolicy: policy))
                for i in 0..<commits { try write(store, "/f\(i % 7)", "write \(i)\n") }
                // Background seals catch up: fewer than 10 events left unsealed, every snapshot made.
                let caughtUp = try eventually(within: 30) {
                    guard store.unsealedCount < 10 else { return false }
                    return store.blocks.allSatisfy {
                        FileManager.default.fileExists(atPath: Store.snapshotsPath(path) + "/" + $0.snapshotName)
                    }
                }
                #expect(caughtUp, "background sealing did not catch up: \(store.unsealedCount) unsealed, \(store.blocks.count) blocks")
                headers = store.blocks
                try store.close()
            }
            #expect(headers.count >= 2, "\(headers.count) blocks for \(commits + 1) events")
            var next: UInt64 = 0
            for header in headers {
                #expect(header.first == next, "blocks are contiguous")
                #expect(header.count >= 10, "a block is sealed only once 10 events are pending: \(header)")
                next = header.last + 1
            }
            #expect(UInt64(commits + 1) - next < 10)
            let log = try bytes(Store.eventsPath(path))
            let blocks = try bytes(path + "/blocks.jsonl")
            for header in headers { try Self.checkSnapshot(of: header, store: path, log: log, blocks: blocks) }

            let reader = try Store.open(path, mode: .readOnly)
            #expect(reader.blocks == headers)
            #expect(reader.headSequence == UInt64(commits))
        }
        #expect(try !currentMountPoints().contains(mountPoint))
    }

    @Test func closingSealsPerPolicy() throws {
        var mountPoint = ""
        try withLoopBtrfs { mount in
            mountPoint = mount
            let path = mount + "/store"
            try Store.create(at: path, by: sealer)
            let onClose = SealPolicy(everyEvents: nil, everySeconds: nil, onClose: true)

            // Manual policy: closing seals nothing.
            do {
                let store = try Store.open(path, options: .init(sealPolicy: .manual))
                try write(store, "/a", "a\n")
                try store.close()
            }
            #expect(try Store.open(path, mode: .readOnly).blocks.isEmpty)

            // onClose: closing seals everything pending, snapshot included.
            do {
                let store = try Store.open(path, options: .init(sealPolicy: onClose))
                try write(store, "/b", "b\n")
                try write(store, "/c", "c\n")
                #expect(store.blocks.isEmpty)
                try store.close()
            }
            let reader = try Store.open(path, mode: .readOnly)
            let header = try #require(reader.blocks.first)
            #expect(reader.blocks.count == 1 && header.first == 0 && header.last == 3)
            #expect(reader.unsealedCount == 0)
            try Self.checkSnapshot(of: header, store: path, log: try bytes(Store.eventsPath(path)), blocks: try bytes(path + "/blocks.jsonl"))

            // Nothing pending: closing again makes no empty block.
            do {
                let store = try Store.open(path, options: .init(sealPolicy: onClose))
                try store.close()
            }
            #expect(try Store.open(path, mode: .readOnly).blocks.count == 1)
            #expect(try FileManager.default.contentsOfDirectory(atPath: Store.snapshotsPath(path)) == [header.snapshotName])
        }
        #expect(try !currentMountPoints().contains(mountPoint))
    }

    @Test func timerSealsAfterItsInterval() throws {
        var mountPoint = ""
        try withLoopBtrfs { mount in
            mountPoint = mount
            let path = mount + "/store"
            try Store.create(at: path, by: sealer)
            let store = try Store.open(path, options: .init(sealPolicy: SealPolicy(everyEvents: nil, everySeconds: 0.2, onClose: false)))
            try write(store, "/a", "a\n")
            let sealed = eventually(within: 10) { store.unsealedCount == 0 && store.blocks.count == 1 }
            #expect(sealed, "the timer sealed nothing")
            let header = try #require(store.blocks.first)
            #expect(eventually(within: 10) { FileManager.default.fileExists(atPath: Store.snapshotsPath(path) + "/" + header.snapshotName) })
            try store.close()
            #expect(try Store.open(path, mode: .readOnly).blocks == [header])
        }
        #expect(try !currentMountPoints().contains(mountPoint))
    }
}

/// On a filesystem without snapshots blocks are logical only (this part needs no btrfs).
@Suite struct LogicalSealingTests {
    @Test func aStoreOnAPlainDirectorySealsWithoutSnapshots() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("layerfs-seal-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(try !Btrfs.isBtrfs(dir), "the temporary directory must not be on btrfs for this test")
        let path = dir + "/store"
        try Store.create(at: path, by: sealer)
        #expect(try !Btrfs.isSubvolume(path))
        #expect(!FileManager.default.fileExists(atPath: Store.snapshotsPath(path)))
        let store = try Store.open(path, options: .init(sealPolicy: SealPolicy(everyEvents: nil, everySeconds: nil, onClose: true)))
        #expect(!store.isBtrfsSubvolume)
        try write(store, "/a", "a\n")
        let first = try #require(try store.seal())
        try write(store, "/b", "b\n")
        try store.close()  // seals the rest
        #expect(!FileManager.default.fileExists(atPath: Store.snapshotsPath(path)), "no snapshots off btrfs")
        let reader = try Store.open(path, mode: .readOnly)
        #expect(reader.blocks.count == 2)
        #expect(reader.blocks.first == first)
        #expect(reader.blocks.last?.last == 2 && reader.blocks.last?.previousHash == first.hash)
        #expect(reader.blocks.last?.merkleRoot == MerkleTree.root([try reader.event(2).hash]))
    }
}
