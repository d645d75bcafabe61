import LayerCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The state of a present file while handles are open on it: one per live object, shared by every
/// handle (so a reader sees a writer's writes at once, as POSIX requires of one file).
///
/// Writes change an in-memory copy of the content; a commit (flush, fsync, close, or before a
/// change the store must see in order, such as chmod or rename of a new file) appends one `write`
/// event with the whole content. `generation` counts writes: a commit marks the file clean only if
/// no write came in while it ran, so a write racing a commit is never lost.
///
/// Commits of one file are serialized (`commitLock`), so they reach the log in the order their
/// content was taken. The state lock is never held while committing.
final class OpenFile: Sendable {
    enum Content {
        /// Not read yet: the committed version's content (nil: a new, empty file).
        case stored(NodeInfo?)
        /// Clean and being read: ranged reads of the committed version (no copy in memory).
        case ranged(FileContent, NodeInfo)
        /// In memory: written (or read whole to be written).
        case loaded([UInt8])
        /// In a staging file of the store: written, and large (see `stagingThreshold`).
        case staged(StagedContent)
    }

    struct State {
        var content: Content
        /// Changed since the last commit.
        var dirty = false
        /// Written (or truncated with truncate/ftruncate) since the last commit: a flush commits.
        /// A file only emptied by open(O_TRUNC) or only created is committed at release or fsync,
        /// not at flush, because a shell's `>` redirection closes a dup of the descriptor before
        /// writing to it (that flush would otherwise append an event for the empty file).
        var written = false
        /// Created by this mount and not yet in the store.
        var pending: Bool
        var generation: UInt64 = 0
        /// For a pending file: its mode and owner (from the create request).
        var mode: UInt32
        var uid: UInt32
        var gid: UInt32
        /// The time of the last write while dirty.
        var mtime: Timestamp
        /// Who wrote last (the commit is attributed to them).
        var writer: Provenance?
        /// A commit of the current content failed and the caller was told (close/fsync returned
        /// the error): the last release drops it instead of trying again behind their back.
        var failureReported = false
    }

    /// What a commit appends.
    struct Snapshot {
        var content: [UInt8]
        var generation: UInt64
        var pending: Bool
        var mode: UInt32
        var writer: Provenance?
    }

    let state: Mutex<State>
    let commitLock = Mutex(())

    /// Clean files larger than this are read by ranges (they are blobs in the store); smaller ones
    /// are read whole once (their content is inline in the event line).
    static let rangedReadThreshold: UInt64 = 65_536

    /// A file written past this size moves from memory to a staging file of the store: its data
    /// then goes to the page cache as it arrives, the commit clones it into a blob, and memory
    /// use stays flat however large it grows. (Overwriting a large committed file clones its blob.)
    static let stagingThreshold: UInt64 = 4 << 20

    /// An existing file (`info`: its committed version).
    init(existing info: NodeInfo) {
        state = Mutex(
            State(content: .stored(info), pending: false, mode: info.mode, uid: info.uid, gid: info.gid, mtime: info.mtime))
    }

    /// A file created by this mount.
    init(createdWithMode mode: UInt32, by who: Provenance) {
        state = Mutex(
            State(
                content: .loaded([]), dirty: true, pending: true, mode: mode & 0o7777, uid: who.uid, gid: who.gid,
                mtime: .now(), writer: who))
    }

    private static func load(_ s: inout State, _ store: Store) throws(LayerError) -> [UInt8] {
        switch s.content {
        case .loaded(let bytes): return bytes
        case .stored(nil):
            s.content = .loaded([])
            return []
        case .stored(let info?), .ranged(_, let info):
            let bytes = try store.read(info)  // whole, hash checked
            s.content = .loaded(bytes)
            return bytes
        case .staged(let staged):
            return try staged.readAll()
        }
    }

    /// The staging file for the content if the file is, or is about to grow, past
    /// `stagingThreshold` (made now, from memory or as a clone of the committed blob); nil to
    /// keep the content in memory.
    private static func staging(_ s: inout State, _ store: Store, newEnd: UInt64) throws(LayerError) -> StagedContent? {
        switch s.content {
        case .staged(let staged):
            return staged
        case .stored(let info?), .ranged(_, let info):
            guard max(info.size, newEnd) > stagingThreshold else { return nil }
            let staged = try store.stage(from: info)
            s.content = .staged(staged)
            return staged
        case .stored(nil):
            guard newEnd > stagingThreshold else { return nil }
            let staged = try store.stage()
            s.content = .staged(staged)
            return staged
        case .loaded(let bytes):
            guard max(UInt64(bytes.count), newEnd) > stagingThreshold else { return nil }
            let staged = try store.stage()
            if !bytes.isEmpty {
                let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 16)
                defer { copy.deallocate() }
                copy.copyBytes(from: bytes)
                try staged.write(UnsafeRawBufferPointer(copy), at: 0)
            }
            s.content = .staged(staged)
            return staged
        }
    }

    private static func markWritten(_ s: inout State, by who: Provenance, explicit: Bool = true) {
        s.dirty = true
        if explicit {
            s.written = true
            s.failureReported = false
        }
        s.generation += 1
        s.writer = who
        s.mtime = .now()
    }

    /// For a clean file whose content is a blob: the blob and how many bytes to read at `offset`
    /// (0 past the end); nil when the read must go through `withBytes` (written, or inline).
    func blobRange(offset: Int, count: Int, store: Store) throws(LayerError) -> (FileContent, Int)? {
        try state.withLock { (s: inout State) throws(LayerError) -> (FileContent, Int)? in
            if case .stored(let info?) = s.content, info.size > Self.rangedReadThreshold {
                s.content = .ranged(try store.openContent(info), info)
            }
            guard case .ranged(let content, _) = s.content, content.blobDescriptor != nil else { return nil }
            guard offset >= 0, UInt64(offset) < content.size, count > 0 else { return nil }
            return (content, Int(min(UInt64(count), content.size - UInt64(offset))))
        }
    }

    /// Calls `body` with up to `count` bytes at `offset` (fewer at the end of the file).
    func withBytes(offset: Int, count: Int, store: Store, _ body: (UnsafeRawBufferPointer) -> Void) throws(LayerError) {
        try state.withLock { (s: inout State) throws(LayerError) in
            if case .stored(let info?) = s.content, info.size > Self.rangedReadThreshold {
                s.content = .ranged(try store.openContent(info), info)
            }
            if case .staged(let staged) = s.content {
                guard offset >= 0, UInt64(offset) < staged.size, count > 0 else {
                    body(UnsafeRawBufferPointer(start: nil, count: 0))
                    return
                }
                let n = Int(min(UInt64(count), staged.size - UInt64(offset)))
                let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: n, alignment: 16)
                defer { buffer.deallocate() }
                let got = try staged.read(offset: UInt64(offset), into: buffer)
                body(UnsafeRawBufferPointer(rebasing: buffer[0..<got]))
                return
            }
            if case .ranged(let content, _) = s.content {
                // Clean and large: read the range from the store, not the whole file into memory.
                guard offset >= 0, UInt64(offset) < content.size, count > 0 else {
                    body(UnsafeRawBufferPointer(start: nil, count: 0))
                    return
                }
                let n = Int(min(UInt64(count), content.size - UInt64(offset)))
                let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: n, alignment: 16)
                defer { buffer.deallocate() }
                let got = try content.read(offset: UInt64(offset), into: buffer)
                body(UnsafeRawBufferPointer(rebasing: buffer[0..<got]))
                return
            }
            let bytes = try Self.load(&s, store)
            let start = min(max(offset, 0), bytes.count)
            let end = min(start + max(count, 0), bytes.count)
            bytes.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[start..<end])) }
        }
    }

    /// Writes `data` at `offset` (a gap becomes zeros). EFBIG past the store's maximum file size.
    func write(_ data: UnsafeRawBufferPointer, at offset: Int, by who: Provenance, store: Store) throws(LayerError) {
        guard offset >= 0, UInt64(offset) + UInt64(data.count) <= Store.maximumFileSize else {
            throw LayerError(.invalidArgument, "larger than the maximum file size (\(Store.maximumFileSize) bytes)", errno: EFBIG)
        }
        try state.withLock { (s: inout State) throws(LayerError) in
            if store.accessMode == .readWrite, let staged = try Self.staging(&s, store, newEnd: UInt64(offset + data.count)) {
                try staged.write(data, at: UInt64(offset))
                Self.markWritten(&s, by: who)
                return
            }
            var bytes = try Self.load(&s, store)
            s.content = .loaded([])  // drop the enum's reference so `bytes` is uniquely owned
            // One pass over the data: a hole is zero-filled, the part over existing bytes copied in
            // place, the rest appended (a sequential writer only appends).
            if offset > bytes.count { bytes.append(contentsOf: repeatElement(0, count: offset - bytes.count)) }
            let overlap = max(0, min(bytes.count - offset, data.count))
            if overlap > 0 {
                bytes.withUnsafeMutableBytes {
                    UnsafeMutableRawBufferPointer(rebasing: $0[offset..<offset + overlap])
                        .copyMemory(from: UnsafeRawBufferPointer(rebasing: data[0..<overlap]))
                }
            }
            if overlap < data.count {
                if bytes.capacity < offset + data.count {
                    bytes.reserveCapacity(max(offset + data.count, bytes.capacity * 2))
                }
                bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: data[overlap...]))
            }
            s.content = .loaded(bytes)
            s.dirty = true
            s.written = true
            s.failureReported = false
            s.generation += 1
            s.writer = who
            s.mtime = .now()
        }
    }

    /// Cuts or extends the content to `size` bytes (uncommitted, like a write). `explicit`: by
    /// truncate/ftruncate (committed at the next flush), not by open(O_TRUNC).
    func truncate(to size: UInt64, explicit: Bool, by who: Provenance, store: Store) throws(LayerError) {
        guard size <= Store.maximumFileSize else {
            throw LayerError(.invalidArgument, "larger than the maximum file size (\(Store.maximumFileSize) bytes)", errno: EFBIG)
        }
        try state.withLock { (s: inout State) throws(LayerError) in
            if size > 0, store.accessMode == .readWrite, let staged = try Self.staging(&s, store, newEnd: size) {
                try staged.truncate(to: size)
                Self.markWritten(&s, by: who, explicit: explicit)
                return
            }
            var bytes = size == 0 ? [] : try Self.load(&s, store)
            s.content = .loaded([])
            let n = Int(size)
            if bytes.count > n { bytes.removeLast(bytes.count - n) } else if bytes.count < n {
                bytes.append(contentsOf: repeatElement(0, count: n - bytes.count))
            }
            s.content = .loaded(bytes)
            s.dirty = true
            if explicit { s.written = true }
            s.generation += 1
            s.writer = who
            s.mtime = .now()
        }
    }

    /// A pending file's mode changes without an event (it is committed with its first content).
    /// False when the file is already in the store.
    func setPendingMode(_ mode: UInt32) -> Bool {
        state.withLock { s in
            guard s.pending else { return false }
            s.mode = mode & 0o7777
            return true
        }
    }

    /// A pending file's owner is already `owner`/`group` (nil: unchanged): nothing to commit.
    func pendingOwnerMatches(owner: UInt32?, group: UInt32?) -> Bool {
        state.withLock { s in s.pending && (owner ?? s.uid) == s.uid && (group ?? s.gid) == s.gid }
    }

    /// `touch` of a pending file: its mtime is the time of its first commit anyway.
    func touchPending() -> Bool {
        state.withLock { s in
            guard s.pending else { return false }
            s.mtime = .now()
            return true
        }
    }

    /// The content to commit, or nil when there is nothing to commit. `writtenOnly`: only if
    /// written since the last commit (what a flush commits).
    func snapshotForCommit(store: Store, writtenOnly: Bool = false) throws(LayerError) -> Snapshot? {
        try state.withLock { (s: inout State) throws(LayerError) -> Snapshot? in
            guard s.dirty || s.pending else { return nil }
            if writtenOnly && !s.written { return nil }
            let bytes = try Self.load(&s, store)
            return Snapshot(content: bytes, generation: s.generation, pending: s.pending, mode: s.mode, writer: s.writer)
        }
    }

    var isStaged: Bool {
        state.withLock { s in
            if case .staged = s.content { return true }
            return false
        }
    }

    /// Commits a staged file through `commit` (given the staging file, whether the file is
    /// pending, its mode and its writer) under the state lock, so the blob is a copy of one
    /// consistent state (writes wait meanwhile). False when the content is not staged (then
    /// commit through `snapshotForCommit`); true when committed or nothing was to commit.
    func commitStaged(
        writtenOnly: Bool, _ commit: (StagedContent, Bool, UInt32, Provenance?) throws -> Void
    ) throws -> Bool {
        try state.withLock { (s: inout State) throws -> Bool in
            guard case .staged(let staged) = s.content else { return false }
            guard s.dirty || s.pending else { return true }
            if writtenOnly && !s.written { return true }
            try commit(staged, s.pending, s.mode, s.writer)
            s.pending = false
            s.dirty = false
            s.written = false
            s.failureReported = false
            return true
        }
    }

    /// The snapshot taken at `generation` is in the store.
    func committed(_ snapshot: Snapshot) {
        state.withLock { s in
            s.pending = false
            if s.generation == snapshot.generation {
                s.dirty = false
                s.written = false
                s.failureReported = false
            }
        }
    }

    /// A flush or fsync returned a commit's error to its caller.
    func noteFailureReported() { state.withLock { $0.failureReported = true } }

    var hasReportedFailure: Bool { state.withLock { $0.failureReported } }

    /// A clean file's committed version changed under it (a truncate event): read that one now.
    func reload(_ info: NodeInfo) {
        state.withLock { s in
            guard !s.dirty && !s.pending else { return }
            s.content = .stored(info)
        }
    }

    /// Forget uncommitted changes (the file was unlinked or replaced: they have nowhere to go).
    func discardChanges() {
        state.withLock { s in
            s.dirty = false
            s.written = false
            s.pending = false
        }
    }

    var isDirtyOrPending: Bool { state.withLock { $0.dirty || $0.pending } }
    var isPending: Bool { state.withLock { $0.pending } }

    /// What `stat` shows while open: a pending file entirely from here; the size always from here
    /// and a dirty file's mtime too (the rest from the store's version, passed in `committed`).
    ///
    /// The size is the open content's even when clean: for a detached file (unlinked while open)
    /// `committed` is the attributes recorded before it lost its path, and a commit of its later
    /// writes is dropped (it has no path) and marks it clean, so they would show the old size
    /// and the kernel would cut reads of the content its handles still hold at that size.
    func attributes(id: UInt64, committed: Attributes?) -> Attributes? {
        state.withLock { s in
            let size: UInt64 =
                switch s.content {
                case .loaded(let bytes): UInt64(bytes.count)
                case .stored(let info): info?.size ?? 0
                case .ranged(_, let info): info.size
                case .staged(let staged): staged.size
                }
            if s.pending {
                return Attributes(
                    ino: id, type: .regular, permissions: s.mode, uid: s.uid, gid: s.gid, size: size, mtime: s.mtime,
                    linkCount: 1)
            }
            guard var a = committed else { return nil }
            a.size = size
            if s.dirty {
                a.mtime = s.mtime
                a.ctime = s.mtime
            }
            return a
        }
    }
}
