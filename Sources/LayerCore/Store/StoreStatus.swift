#if canImport(Glibc)
import Glibc
#endif

/// Who holds a store's writer lock, as far as a reader can tell without taking it.
public enum WriterState: Hashable, Sendable {
    /// No writer, and the last one closed cleanly.
    case none
    /// A live process holds the lock; the line names it (pid, process, host, since).
    case held(String)
    /// No live writer, but the last one did not close cleanly (crash, kill -9, power loss): the
    /// line it left behind. The next writer notes it and carries on.
    case uncleanlyClosed(String)
}

/// Figures about a store for `layerfs status`: counts, sizes on disk, snapshots and the writer.
/// Everything here is read from the open store or with plain `lstat`/`readdir`; nothing changes.
public struct StoreStatus: Hashable, Sendable {
    public var path: String
    public var storeID: String
    /// Events in the log (the genesis event included): `headSequence + 1`.
    public var eventCount: UInt64
    public var headSequence: UInt64
    public var headHash: Digest
    public var blocks: [BlockHeader]
    public var unsealedCount: Int
    /// Sizes of the files as they are on disk now (a live writer may have appended since open).
    public var eventsBytes: UInt64
    public var blocksBytes: UInt64
    /// Total bytes and number of the blobs under `objects/`.
    public var objectBytes: UInt64
    public var objectCount: Int
    public var isBtrfsSubvolume: Bool
    /// Names under `.snapshots/`, sorted (empty when not on btrfs).
    public var snapshots: [String]
    public var writer: WriterState
    public var openNotes: [String]
}

/// What is wrong with one block's snapshot (btrfs stores only).
public struct SnapshotProblem: Hashable, Sendable, CustomStringConvertible {
    public var block: UInt64
    public var path: String
    public var problem: String

    public var description: String { "block \(block): snapshot \(path) \(problem)" }
}

extension Store {
    /// Counts, sizes, snapshots and the writer lock's holder, for status reports.
    public func status() -> StoreStatus {
        let objects = Store.directoryUsage(path + "/objects")
        var snapshots: [String] = []
        if isBtrfsSubvolume, let names = try? FileSystem.listDirectory(Store.snapshotsPath(path)) {
            snapshots = names.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        }
        let head = headSequence
        return StoreStatus(
            path: path, storeID: storeID, eventCount: head + 1, headSequence: head, headHash: headHash,
            blocks: blocks, unsealedCount: unsealedCount,
            eventsBytes: Store.fileSize(Store.eventsPath(path)), blocksBytes: Store.fileSize(Store.blocksPath(path)),
            objectBytes: objects.bytes, objectCount: objects.files, isBtrfsSubvolume: isBtrfsSubvolume,
            snapshots: snapshots, writer: writerState, openNotes: openNotes)
    }

    /// The writer lock's state as seen from outside (a writer that is this very object reports
    /// itself as `.held`).
    public var writerState: WriterState {
        let lock = Store.lockPath(path)
        let line = WriterLock.holder(path: lock)
        if accessMode == .readWrite || WriterLock.isHeld(path: lock) {
            return .held(line ?? "a process that has not written its name yet")
        }
        return line.map { .uncleanlyClosed($0) } ?? .none
    }

    /// The path of the read-only snapshot taken when `block` was sealed (btrfs stores).
    public func snapshotPath(of block: BlockHeader) -> String {
        Store.snapshotsPath(path) + "/" + block.snapshotName
    }

    /// On a btrfs store, checks that every block's snapshot exists under `.snapshots/` and is a
    /// read-only subvolume. Empty when all are there, or when the store is not on btrfs (where
    /// blocks are logical only and have no snapshots).
    public func snapshotProblems() -> [SnapshotProblem] {
        guard isBtrfsSubvolume else { return [] }
        var problems: [SnapshotProblem] = []
        for block in blocks {
            let snapshot = snapshotPath(of: block)
            func note(_ text: String) { problems.append(SnapshotProblem(block: block.number, path: snapshot, problem: text)) }
            guard FileSystem.exists(snapshot) else { note("is missing"); continue }
            do throws(LayerError) {
                guard try Btrfs.isSubvolume(snapshot) else { note("is not a btrfs subvolume"); continue }
                if try !Btrfs.isReadOnly(snapshot) { note("is not read-only") }
            } catch {
                note("cannot be checked: \(error.message)")
            }
        }
        return problems
    }

    static func fileSize(_ path: String) -> UInt64 {
        var st = Glibc.stat()
        return lstat(path, &st) == 0 ? UInt64(st.st_size) : 0
    }

    /// Total size of the regular files below `directory` (not following symlinks), and how many of
    /// them are blobs (named by the 62 hex digits after their directory's 2; a temporary file left
    /// by a crash mid-store is counted in the bytes but not as a blob).
    static func directoryUsage(_ directory: String) -> (bytes: UInt64, files: Int) {
        var bytes: UInt64 = 0
        var files = 0
        var pending = [directory]
        while let next = pending.popLast() {
            guard let names = try? FileSystem.listDirectory(next) else { continue }
            for name in names {
                let child = next + "/" + name
                var st = Glibc.stat()
                guard lstat(child, &st) == 0 else { continue }
                switch st.st_mode & S_IFMT {
                case S_IFDIR: pending.append(child)
                case S_IFREG:
                    bytes += UInt64(st.st_size)
                    if name.utf8.count == 62, Digest(hex: StorePath.name(of: next) + name) != nil { files += 1 }
                default: break
                }
            }
        }
        return (bytes, files)
    }
}
