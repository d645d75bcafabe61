import LayerCore
import Synchronization

/// The live objects of the present: which node id is which path *now*.
///
/// The store is addressed by path; the kernel addresses files by node id and keeps using an id
/// across renames (it moves its dentry itself). So the present's files and directories are live
/// objects with ids of their own, mapped to their current path here and moved when a rename
/// commits: a directory's renamed descendants keep their ids, an open file stays the same object
/// while it is written (POSIX: `fstat` of an open file shows one inode across writes), and an
/// object that is unlinked or replaced by a rename is *detached* (no path) but stays readable
/// through the handles already open on it.
///
/// Historical views do not use this: there a file is a version node (`NodeID.version`).
///
/// Also here: files created but not yet committed (*pending*): `create` does not append an event;
/// the file's first commit (at flush, fsync or close) does, so create + write + close is one event.
///
/// Lifetime: an object lives while the kernel holds references to it (`remember` / `forget`, the
/// FUSE lookup count) or while it has an open file. Its id is never reused in this mount.
///
/// All state is behind one `Mutex`; nothing here calls the store or the kernel.
final class PresentTree: Sendable {
    struct Object {
        /// The current path; nil once unlinked, removed or replaced.
        var path: String?
        /// References the kernel holds (lookup count).
        var lookups: UInt64
        /// The open-file state while at least one handle is open.
        var file: OpenFile?
        /// Open handles on `file`.
        var handles: Int = 0
        /// Attributes last seen, for `fstat` of a detached open object.
        var lastAttributes: Attributes?
        /// Changes were dropped (a commit failed): the kernel's cached pages may hold them, so the
        /// next open must not keep them.
        var pagesStale = false
    }

    struct State {
        var objects: [UInt64: Object] = [NodeID.root: Object(path: "/", lookups: 1)]
        var byPath: [String: UInt64] = ["/": NodeID.root]
        /// Files created and not yet committed: path → id.
        var pending: [String: UInt64] = [:]
        var next: UInt64 = 1
    }

    private let state = Mutex(State())

    init() {}

    // MARK: Ids and paths

    /// The id of `path` if it has one (creates nothing; for readdir's d_ino).
    func existingID(_ path: String) -> UInt64? { state.withLock { $0.byPath[path] } }

    /// One more kernel reference to the object at `path` (created if new); returns its id.
    func remember(_ path: String) -> UInt64 {
        state.withLock { s in
            if let id = s.byPath[path] {
                s.objects[id]!.lookups += 1
                return id
            }
            let id = NodeID.presentFlag | s.next
            s.next += 1
            s.objects[id] = Object(path: path, lookups: 1)
            s.byPath[path] = id
            return id
        }
    }

    /// The kernel dropped `count` references. The object goes when none remain and no file is open.
    func forget(_ id: UInt64, count: UInt64) {
        guard id != NodeID.root else { return }
        state.withLock { s in
            guard var object = s.objects[id] else { return }
            object.lookups = object.lookups > count ? object.lookups - count : 0
            s.objects[id] = object
            Self.dropIfUnused(id, &s)
        }
    }

    private static func dropIfUnused(_ id: UInt64, _ s: inout State) {
        guard id != NodeID.root, let object = s.objects[id], object.lookups == 0, object.file == nil else { return }
        s.objects[id] = nil
        if let path = object.path, s.byPath[path] == id {
            s.byPath[path] = nil
            if s.pending[path] == id { s.pending[path] = nil }
        }
    }

    func contains(_ id: UInt64) -> Bool { state.withLock { $0.objects[id] != nil } }

    /// The current path of `id`: nil when detached or unknown.
    func path(_ id: UInt64) -> String? { state.withLock { $0.objects[id]?.path } }

    /// The path and open file of `id` in one look.
    func snapshot(_ id: UInt64) -> (known: Bool, path: String?, file: OpenFile?, last: Attributes?) {
        state.withLock { s in
            guard let o = s.objects[id] else { return (false, nil, nil, nil) }
            return (true, o.path, o.file, o.lastAttributes)
        }
    }

    func noteAttributes(_ id: UInt64, _ attributes: Attributes) {
        state.withLock { s in s.objects[id]?.lastAttributes = attributes }
    }

    // MARK: Open files

    /// The open file of `id`, made by `make` if it has none; counts one more handle.
    func openFile(_ id: UInt64, make: () -> OpenFile) -> OpenFile? {
        state.withLock { s in
            guard var object = s.objects[id] else { return nil }
            let file = object.file ?? make()
            object.handles += 1
            object.file = file
            s.objects[id] = object
            return file
        }
    }

    /// One handle of `id` closed; the open file goes with the last one.
    func closeFile(_ id: UInt64) {
        state.withLock { s in
            guard var object = s.objects[id], object.file != nil else { return }
            object.handles -= 1
            if object.handles <= 0 { object.file = nil }
            s.objects[id] = object
            Self.dropIfUnused(id, &s)
        }
    }

    /// One more handle on `id`'s open file if it has one; nil if it has none (then `openFile`
    /// makes one). One step: a look and then an attach could find the file gone in between,
    /// closed by a release racing this open.
    func attachExisting(_ id: UInt64) -> OpenFile? {
        state.withLock { s in
            guard var object = s.objects[id], let file = object.file else { return nil }
            object.handles += 1
            s.objects[id] = object
            return file
        }
    }

    /// A release: one handle fewer, the open file kept (the caller may commit it, then calls
    /// `dropClosedFile`). True when no handle is left, for exactly one of racing releases.
    func releaseHandle(_ id: UInt64) -> Bool {
        state.withLock { s in
            guard var object = s.objects[id], object.file != nil, object.handles > 0 else { return false }
            object.handles -= 1
            s.objects[id] = object
            return object.handles == 0
        }
    }

    /// After a release: the open file goes if no handle is open on it (one may have opened since).
    func dropClosedFile(_ id: UInt64) {
        state.withLock { s in
            guard var object = s.objects[id], object.file != nil, object.handles <= 0 else { return }
            object.file = nil
            s.objects[id] = object
            Self.dropIfUnused(id, &s)
        }
    }

    /// Open handles on `id` (0 when it has no open file).
    func handleCount(_ id: UInt64) -> Int { state.withLock { $0.objects[id]?.handles ?? 0 } }

    /// The kernel's pages of `id` may hold content the store does not have (dropped changes).
    func markPagesStale(_ id: UInt64) { state.withLock { s in s.objects[id]?.pagesStale = true } }

    /// Whether an open of `id` may keep the kernel's pages (and clears the stale mark).
    func takeKeepCache(_ id: UInt64) -> Bool {
        state.withLock { s in
            guard s.objects[id]?.pagesStale == true else { return true }
            s.objects[id]!.pagesStale = false
            return false
        }
    }

    /// Every open file (for committing at unmount).
    func openFiles() -> [(id: UInt64, file: OpenFile)] {
        state.withLock { s in s.objects.compactMap { id, o in o.file.map { (id, $0) } } }
    }

    // MARK: Pending (created, not yet committed) files

    /// Registers a created file at `path` with its open file; counts one lookup and one handle.
    /// Nil if the path is taken meanwhile.
    func addPending(_ path: String, file: OpenFile) -> UInt64? {
        state.withLock { s in
            if s.pending[path] != nil { return nil }
            if let old = s.byPath[path] { Self.detach(old, &s) }
            let id = NodeID.presentFlag | s.next
            s.next += 1
            s.objects[id] = Object(path: path, lookups: 1, file: file, handles: 1)
            s.byPath[path] = id
            s.pending[path] = id
            return id
        }
    }

    func pendingID(_ path: String) -> UInt64? { state.withLock { $0.pending[path] } }

    /// The pending file at `path` is now in the store.
    func committed(_ path: String, id: UInt64) {
        state.withLock { s in
            if s.pending[path] == id { s.pending[path] = nil }
        }
    }

    /// Names of pending files directly in directory `path`.
    func pendingChildren(of path: String) -> [(name: String, id: UInt64, file: OpenFile?)] {
        state.withLock { s in
            s.pending.compactMap { child, id -> (String, UInt64, OpenFile?)? in
                guard StorePath.parent(of: child) == path else { return nil }
                return (StorePath.name(of: child), id, s.objects[id]?.file)
            }.sorted { $0.0 < $1.0 }
        }
    }

    func hasPendingDescendant(of path: String) -> Bool {
        state.withLock { s in s.pending.keys.contains { StorePath.isSelfOrDescendant($0, of: path) && $0 != path } }
    }

    // MARK: Changes committed to the store

    private static func detach(_ id: UInt64, _ s: inout State) {
        guard var object = s.objects[id], let path = object.path else { return }
        object.path = nil
        s.objects[id] = object
        if s.byPath[path] == id { s.byPath[path] = nil }
        if s.pending[path] == id { s.pending[path] = nil }
        dropIfUnused(id, &s)
    }

    /// `path` was unlinked or removed (or a pending file there was discarded): detach its object.
    func removed(_ path: String) {
        state.withLock { s in
            if let id = s.byPath[path] { Self.detach(id, &s) }
        }
    }

    /// `from` was renamed to `to`: whatever was at `to` is detached, and `from` and everything
    /// below it move (keeping their ids).
    func moved(from: String, to: String) {
        state.withLock { s in
            if let replaced = s.byPath[to], s.byPath[from] != replaced { Self.detach(replaced, &s) }
            let prefix = from == "/" ? "/" : from + "/"
            var moves: [(UInt64, String, String)] = []
            for (id, object) in s.objects {
                guard let path = object.path, path == from || path.hasPrefix(prefix) else { continue }
                moves.append((id, path, to + path.dropFirst(from.count)))
            }
            for (_, old, _) in moves where s.byPath[old] != nil { s.byPath[old] = nil }
            for (id, old, new) in moves {
                s.objects[id]!.path = new
                s.byPath[new] = id
                if s.pending[old] == id {
                    s.pending[old] = nil
                    s.pending[new] = id
                }
            }
        }
    }

    /// Objects known (tests and diagnostics).
    var count: Int { state.withLock { $0.objects.count } }
}
