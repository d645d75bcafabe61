// The read-write present: every change through the mount becomes one event.
//
// What commits, and when (DESIGN.md, "Events"):
// - A file handle's writes change the shared open file (`OpenFile`) in memory; they are committed
//   as ONE `write` event with the whole content at flush (every close(2)), at fsync, and at the
//   release of the file's last open handle if still uncommitted. open(O_TRUNC) + write + close is
//   one event. A commit's error (ENOSPC, EIO) is returned by the close or fsync that asked for it;
//   nothing is acknowledged before the event is durable (Store.commit returns after fdatasync).
// - create(2) appends nothing: the new file is *pending* until its first commit, so create + write
//   + close is one event, and the editor pattern (write a temp file, fsync, rename it over) is two:
//   the temp file's content, then the rename.
// - mkdir, rmdir, unlink, rename, symlink, chmod, chown, utimens, truncate of a file no handle has
//   open: one event each, durable before the reply. truncate of an open file changes the open file
//   (committed with its writes). chmod, chown and utimens first commit the file's pending writes,
//   so `cp -a`'s futimens is not undone by the commit at close.
// - Historical views and the @ directories: EROFS for every change. Hard links, device files,
//   FIFOs and sockets: EPERM (the store holds regular files, directories and symlinks). Extended
//   attributes cannot be set: ENOTSUP (the user.layerfs.* attributes are provenance, read-only).
//
// Locks, always taken in this order: the namespace's path lock (shared for everything that acts on
// a path, exclusive for rename, unlink and rmdir, which move or detach paths), then a file's commit
// lock, then its state lock. None is held while replying to the kernel.

import CFuse3
import LayerCore
import Logging
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

extension LayerFilesystem {
    var store: Store { namespace.store }
    var tree: PresentTree { namespace.tree }

    /// Who is asking: the FUSE request's uid and gid, the process of its thread, and its name.
    /// (The request names the calling thread; the process and its name are read from /proc once
    /// per thread and cached, so a stream of writes does not read /proc for each.)
    func provenance(_ req: fuse_req_t) -> Provenance {
        guard let ctx = fuse_req_ctx(req)?.pointee else { return .currentProcess() }
        return provenanceCache.provenance(uid: ctx.uid, gid: ctx.gid, thread: ctx.pid)
    }

    /// The present object `id` names, or EROFS when it is in a historical view or an @ directory.
    func presentObject(_ id: fuse_ino_t) throws -> UInt64 {
        guard case .present(let object) = try node(id) else { throw Errno.readOnlyFileSystem }
        return object
    }

    /// Whether the store's present has `path` (a missing parent, or a file as parent, is no).
    func exists(_ path: String) throws -> Bool {
        do throws(LayerError) {
            _ = try store.stat(path)
            return true
        } catch {
            if error.code == .notFound || error.code == .notDirectory { return false }
            throw error
        }
    }

    func requireWritableStore() throws {
        if store.accessMode == .readOnly { throw Errno.readOnlyFileSystem }
    }

    /// `parent/name` for a new entry, with the errors creating it would get: ENAMETOOLONG, EINVAL
    /// for `.`/`..`, EPERM for a root name starting with @ (reserved for the views).
    static func newPath(_ parent: String, _ name: String) throws -> String {
        try StorePath.checkName(name, path: parent)
        let path = StorePath.join(parent, name)
        if StorePath.isReserved(path) {
            throw LayerError(.reservedName, "names starting with '@' at the root are reserved for the mount's views", path: path)
        }
        return path
    }

    /// Replies with the entry of present object `id` (already counted by the tree).
    private func replyPresentEntry(_ req: fuse_req_t, _ id: UInt64) throws {
        let attributes: Attributes
        do { attributes = try namespace.attributes(.present(id), id: id) } catch {
            namespace.forgetPresent(id)
            throw error
        }
        var entry = fuse_entry_param()
        entry.ino = id
        entry.attr = attributes.stat
        entry.attr_timeout = Namespace.liveTimes.attributes
        entry.entry_timeout = Namespace.liveTimes.entry
        if fuse_reply_entry(req, &entry) != 0 { namespace.forgetPresent(id) }
    }

    // MARK: Files

    /// `open` of a present file: shares the object's open file; O_TRUNC empties it (committed at close).
    func openPresent(_ req: fuse_req_t, _ id: UInt64, _ fi: UnsafeMutablePointer<fuse_file_info>) throws {
        let flags = fi.pointee.flags
        let writable = flags & O_ACCMODE != O_RDONLY
        if writable || flags & O_TRUNC != 0 { try requireWritableStore() }
        let file = try namespace.pathLock.shared { () throws -> OpenFile in try attachOpenFile(id) }
        if writable && flags & O_TRUNC != 0 {
            do { try truncateAtOpen(file, by: provenance(req)) } catch {
                tree.closeFile(id)
                throw error
            }
        }
        fi.pointee.fh = addHandle(.presentFile(id: id, file: file, writable: writable))
        // Every change to a present file goes through this mount, so the kernel's pages of it
        // stay right (writes go through them, truncate and rename are done by the kernel too):
        // keep them across opens.
        // (Unless a failed commit dropped changes the pages may still hold.)
        fi.pointee.keep_cache = tree.takeKeepCache(id) ? 1 : 0
        // A read-only descriptor commits nothing at close (a writer's own close or release does).
        fi.pointee.noflush = writable ? 0 : 1
        if fuse_reply_open(req, fi) != 0 {
            removeHandle(fi.pointee.fh)
            tree.closeFile(id)
        }
    }

    /// open(O_TRUNC) empties the file (committed by this handle's first write + flush, or at the
    /// last release). Under the commit lock, so that a release that found no handle open
    /// (`commitLocked(ifNoHandleOpen:)`) never commits this emptying as a version of its own.
    private func truncateAtOpen(_ file: OpenFile, by who: Provenance) throws {
        try file.commitLock.withLock { (_: inout ()) throws in
            try file.truncate(to: 0, explicit: false, by: who, store: store)
        }
    }

    /// The open file of `id`, counting one more handle (the path lock is held shared).
    private func attachOpenFile(_ id: UInt64) throws -> OpenFile {
        // Attached in one step: the last handle may be closing right now.
        if let file = tree.attachExisting(id) { return file }
        let object = tree.snapshot(id)
        guard object.known else { throw Errno.staleNFSFileHandle }
        guard let path = object.path else { throw LayerError(.notFound, "removed from the present") }
        let info = try store.stat(path)
        switch info.kind {
        case .directory: throw Errno.isDirectory
        case .symlink: throw Errno.tooManySymbolicLinkLevels
        case .file: break
        }
        // (An open racing this one may have made the open file meanwhile: then it is shared.)
        guard let file = tree.openFile(id, make: { OpenFile(existing: info) }) else { throw Errno.staleNFSFileHandle }
        return file
    }

    func write(_ req: fuse_req_t, _ data: UnsafeRawBufferPointer, offset: Int, _ fi: UnsafeMutablePointer<fuse_file_info>) {
        guard case .presentFile(_, let file, let writable)? = handle(fi.pointee.fh), writable else {
            fuse_reply_err(req, handle(fi.pointee.fh) == nil ? EBADF : EROFS)
            return
        }
        do {
            try file.write(data, at: offset, by: provenance(req), store: store)
            fuse_reply_write(req, data.count)
        } catch {
            fuse_reply_err(req, errno(error, "write"))
        }
    }

    /// Commits `file`'s uncommitted content as one event at its current path (nothing if clean;
    /// dropped if the object was unlinked or replaced meanwhile). Takes the path lock shared.
    func commit(_ id: UInt64, _ file: OpenFile, fallback who: Provenance, writtenOnly: Bool = false, ifNoHandleOpen: Bool = false) throws {
        try namespace.pathLock.shared { () throws in
            try commitLocked(id, file, fallback: who, writtenOnly: writtenOnly, ifNoHandleOpen: ifNoHandleOpen)
        }
    }

    /// `commit` with the path lock already held (shared or exclusive). `ifNoHandleOpen`: nothing
    /// if a handle is open on the file (what the last release does, see `releasePresent`).
    func commitLocked(
        _ id: UInt64, _ file: OpenFile, fallback who: Provenance, writtenOnly: Bool = false, ifNoHandleOpen: Bool = false
    ) throws {
        try file.commitLock.withLock { (_: inout ()) throws in
            if ifNoHandleOpen && tree.handleCount(id) > 0 { return }
            if file.isStaged {
                // A large file: its staging file is cloned into a blob, under the file's lock.
                guard let path = tree.path(id) else {
                    file.discardChanges()
                    return
                }
                var wasPending = false
                let done = try file.commitStaged(writtenOnly: writtenOnly) { staged, pending, mode, writer in
                    wasPending = pending
                    try store.commit(.writeStaged(path: path, content: staged, mode: pending ? mode : nil), by: writer ?? who)
                }
                if done {
                    if wasPending { tree.committed(path, id: id) }
                    return
                }
            }
            guard let snapshot = try file.snapshotForCommit(store: store, writtenOnly: writtenOnly) else { return }
            guard let path = tree.path(id) else {
                file.discardChanges()
                return
            }
            try store.commit(
                .write(path: path, content: snapshot.content, mode: snapshot.pending ? snapshot.mode : nil),
                by: snapshot.writer ?? who)
            file.committed(snapshot)
            if snapshot.pending { tree.committed(path, id: id) }
        }
    }

    /// `flush` (each close(2)) and `fsync`: commit, and return the commit's error to the caller.
    func flushOrSync(_ req: fuse_req_t, _ fi: UnsafeMutablePointer<fuse_file_info>, _ operation: StaticString) {
        guard case .presentFile(let id, let file, _)? = handle(fi.pointee.fh) else {
            // Historical files and directories have nothing to commit.
            fuse_reply_err(req, 0)
            return
        }
        do {
            try commit(id, file, fallback: provenance(req), writtenOnly: "\(operation)" == "flush")
            fuse_reply_err(req, 0)
        } catch {
            file.noteFailureReported()
            fuse_reply_err(req, errno(error, operation))
        }
    }

    /// The last chance to commit (writes through mmap reach us after flush); then the handle goes.
    ///
    /// Only the release of the last handle open on the file commits. The kernel sends RELEASE
    /// asynchronously, after close(2) has returned, so it can arrive after the same process has
    /// opened the file again: with `open(O_TRUNC); write; close` twice in a row, the first
    /// release landing between the second open's truncation and its write would otherwise commit
    /// the emptied file as a version of its own (an extra empty `write` event). Nothing waits for
    /// a release, and the last handle's release commits whatever is left, so skipping loses
    /// nothing. The handle is counted out first (`releaseHandle`), so of racing releases exactly
    /// one is the last; the commit re-checks under the commit lock that no open came since.
    func releasePresent(_ req: fuse_req_t, id: UInt64, file: OpenFile) {
        do {
            try namespace.pathLock.shared { () throws in try finishHandle(id, file, fallback: provenance(req)) }
        } catch {
            logger.error("release: uncommitted writes of \(tree.path(id) ?? "a removed file") are lost: \(error)")
        }
    }

    /// One handle on `file` is done (a release, or the temporary handle of a setattr): if it was
    /// the last, commits what is left and lets the open file go. Path lock held (shared).
    /// Throws the commit's error (the uncommitted changes are then dropped).
    func finishHandle(_ id: UInt64, _ file: OpenFile, fallback who: Provenance) throws {
        var failure: (any Error)?
        // A new file whose commit failed (ENOSPC, EIO) was never in the store: it must leave the
        // tree like any other pending file released uncommitted. `discardChanges` clears the
        // pending flag, so read it first; otherwise the name stayed listed by readdir (stat of it:
        // ENOENT) until the kernel forgot the inode.
        var failedWhilePending = false
        if tree.releaseHandle(id) {
            if file.hasReportedFailure && tree.handleCount(id) == 0 {
                // Content whose commit failed, as its writer was told by close or fsync, is not
                // committed behind their back later (the disk may have room again by now).
                failedWhilePending = file.isPending
                file.discardChanges()
                tree.markPagesStale(id)
                logger.info("dropped the uncommitted content of \(tree.path(id) ?? "a removed file"): its commit failed and the writer was told")
            } else {
                do { try commitLocked(id, file, fallback: who, ifNoHandleOpen: true) } catch {
                    failure = error
                    failedWhilePending = file.isPending
                    file.discardChanges()
                    tree.markPagesStale(id)
                }
            }
        }
        let stillPending = failedWhilePending || file.isPending
        tree.dropClosedFile(id)
        if stillPending, let path = tree.path(id), tree.pendingID(path) == id, tree.snapshot(id).file == nil {
            tree.removed(path)
        }
        if let failure { throw failure }
    }

    /// Commits every open file (at unmount, before the store closes).
    public func commitAll() {
        for (id, file) in tree.openFiles() where file.isDirtyOrPending {
            do { try commit(id, file, fallback: .currentProcess()) } catch {
                logger.error("unmount: uncommitted writes of \(tree.path(id) ?? "a removed file") are lost: \(error)")
            }
        }
    }

    func create(_ req: fuse_req_t, parent: fuse_ino_t, name: String, mode: UInt32, _ fi: UnsafeMutablePointer<fuse_file_info>) {
        do {
            try requireWritableStore()
            let parentID = try presentObject(parent)
            let who = provenance(req)
            let flags = fi.pointee.flags
            // Either a new pending file, or (a racing create made it meanwhile) the existing one.
            let created: (id: UInt64, file: OpenFile, isNew: Bool) = try namespace.pathLock.shared {
                () throws -> (UInt64, OpenFile, Bool) in
                let parentPath = try namespace.presentPath(parentID)
                let path = try Self.newPath(parentPath, name)
                let exists = try tree.pendingID(path) != nil || exists(path)
                if exists {
                    if flags & O_EXCL != 0 { throw LayerError(.alreadyExists, "already exists", path: path) }
                    let id = tree.remember(path)
                    do { return (id, try attachOpenFile(id), false) } catch {
                        tree.forget(id, count: 1)
                        throw error
                    }
                }
                let parentInfo = try store.stat(parentPath)
                guard parentInfo.kind == .directory else { throw Errno.notDirectory }
                let file = OpenFile(createdWithMode: mode, by: who)
                guard let id = tree.addPending(path, file: file) else {
                    throw LayerError(.alreadyExists, "already exists", path: path)
                }
                return (id, file, true)
            }
            if !created.isNew && flags & O_TRUNC != 0 {
                try truncateAtOpen(created.file, by: who)
            }
            var entry = fuse_entry_param()
            let attributes = try namespace.attributes(.present(created.id), id: created.id)
            entry.ino = created.id
            entry.attr = attributes.stat
            entry.attr_timeout = Namespace.liveTimes.attributes
            entry.entry_timeout = Namespace.liveTimes.entry
            fi.pointee.fh = addHandle(.presentFile(id: created.id, file: created.file, writable: flags & O_ACCMODE != O_RDONLY))
            fi.pointee.keep_cache = 0
            if fuse_reply_create(req, &entry, fi) != 0 {
                removeHandle(fi.pointee.fh)
                releasePresent(req, id: created.id, file: created.file)
                namespace.forgetPresent(created.id)
            }
        } catch {
            fuse_reply_err(req, errno(error, "create"))
        }
    }

    // MARK: Names

    /// Commits `change` for a new entry `parent/name` and replies with its entry.
    private func makeEntry(_ req: fuse_req_t, parent: fuse_ino_t, name: String, _ operation: StaticString, _ change: (String) -> Change) {
        do {
            try requireWritableStore()
            let parentID = try presentObject(parent)
            let who = provenance(req)
            let id = try namespace.pathLock.shared { () throws -> UInt64 in
                let path = try Self.newPath(namespace.presentPath(parentID), name)
                if tree.pendingID(path) != nil { throw LayerError(.alreadyExists, "already exists", path: path) }
                try store.commit(change(path), by: who)
                return tree.remember(path)
            }
            try replyPresentEntry(req, id)
        } catch {
            fuse_reply_err(req, errno(error, operation))
        }
    }

    func mkdir(_ req: fuse_req_t, parent: fuse_ino_t, name: String, mode: UInt32) {
        makeEntry(req, parent: parent, name: name, "mkdir") { .mkdir(path: $0, mode: mode & 0o7777) }
    }

    func symlink(_ req: fuse_req_t, target: String, parent: fuse_ino_t, name: String) {
        makeEntry(req, parent: parent, name: name, "symlink") { .symlink(path: $0, target: target) }
    }

    /// `mknod`: a regular file is created empty at once (no handle will commit it); other kinds
    /// (devices, FIFOs, sockets) cannot be stored: EPERM.
    func mknod(_ req: fuse_req_t, parent: fuse_ino_t, name: String, mode: UInt32) {
        guard mode & S_IFMT == S_IFREG || mode & S_IFMT == 0 else {
            fuse_reply_err(req, (try? presentObject(parent)) == nil ? EROFS : EPERM)
            return
        }
        makeEntry(req, parent: parent, name: name, "mknod") { .write(path: $0, content: [], mode: mode & 0o7777) }
    }

    func unlink(_ req: fuse_req_t, parent: fuse_ino_t, name: String) {
        remove(req, parent: parent, name: name, directory: false)
    }

    func rmdir(_ req: fuse_req_t, parent: fuse_ino_t, name: String) {
        remove(req, parent: parent, name: name, directory: true)
    }

    private func remove(_ req: fuse_req_t, parent: fuse_ino_t, name: String, directory: Bool) {
        do {
            try requireWritableStore()
            let parentID = try presentObject(parent)
            let who = provenance(req)
            try namespace.pathLock.exclusive { () throws in
                let parentPath = try namespace.presentPath(parentID)
                try StorePath.checkName(name, path: parentPath)
                let path = StorePath.join(parentPath, name)
                noteAttributesBeforeDetaching(path, directory: directory)
                if !directory, let pending = tree.pendingID(path) {
                    // Never committed: it goes without an event (its open handles keep reading it).
                    tree.snapshot(pending).file?.discardChanges()
                    tree.removed(path)
                    return
                }
                if directory && tree.hasPendingDescendant(of: path) {
                    throw LayerError(.directoryNotEmpty, "directory not empty", path: path)
                }
                try store.commit(directory ? .rmdir(path: path) : .unlink(path: path), by: who)
                tree.removed(path)
            }
            fuse_reply_err(req, 0)
        } catch {
            fuse_reply_err(req, errno(error, directory ? "rmdir" : "unlink"))
        }
    }

    func rename(_ req: fuse_req_t, parent: fuse_ino_t, name: String, newParent: fuse_ino_t, newName: String, flags: UInt32) {
        do {
            try requireWritableStore()
            let fromParent = try presentObject(parent)
            let toParent = try presentObject(newParent)
            let noReplace: UInt32 = 1  // RENAME_NOREPLACE (linux/fs.h)
            guard flags & ~noReplace == 0 else { throw Errno.invalidArgument }  // RENAME_EXCHANGE, RENAME_WHITEOUT
            let who = provenance(req)
            try namespace.pathLock.exclusive { () throws in
                let fromDirectory = try namespace.presentPath(fromParent)
                try StorePath.checkName(name, path: fromDirectory)
                let from = StorePath.join(fromDirectory, name)
                let to = try Self.newPath(namespace.presentPath(toParent), newName)
                let sourcePending = tree.pendingID(from)
                let sourceInfo = sourcePending == nil ? try store.stat(from) : nil
                let targetPending = tree.pendingID(to)
                let targetExists = try targetPending != nil || exists(to)
                if flags & noReplace != 0 && targetExists { throw LayerError(.alreadyExists, "already exists", path: to) }
                if from == to { return }
                if sourceInfo?.kind == .directory {
                    if targetPending != nil { throw LayerError(.notDirectory, "cannot replace a non-directory with a directory", path: to) }
                    if tree.hasPendingDescendant(of: to) { throw LayerError(.directoryNotEmpty, "directory not empty", path: to) }
                }
                if let sourcePending, let file = tree.snapshot(sourcePending).file {
                    // A new file is committed first, so the rename has something to move.
                    try commitLocked(sourcePending, file, fallback: who)
                }
                if targetExists { noteAttributesBeforeDetaching(to, directory: sourceInfo?.kind == .directory) }
                try store.commit(.rename(from: from, to: to), by: who)
                if let targetPending { tree.snapshot(targetPending).file?.discardChanges() }
                tree.moved(from: from, to: to)
            }
            fuse_reply_err(req, 0)
        } catch {
            fuse_reply_err(req, errno(error, "rename"))
        }
    }

    /// An open file about to lose its path (unlink, or replaced by a rename) goes on showing its
    /// size, mode and owner through its handles (`fstat` after unlink): `presentAttributes` of a
    /// detached object starts from the attributes last recorded for it, which may be none, or
    /// stale ones from its creation, if nothing asked while it was open. Record them now, while
    /// the store still has the path. A directory (rmdir, or replaced by a rename) has no open file
    /// to tell whether it is open (opendir): its attributes are recorded whenever the kernel knows
    /// it, so `fstat` of a descriptor on a removed directory answers instead of ENOENT.
    /// (Path lock held exclusively.)
    private func noteAttributesBeforeDetaching(_ path: String, directory: Bool = false) {
        guard let id = tree.existingID(path) else { return }
        if tree.snapshot(id).file != nil {
            _ = try? namespace.presentAttributes(id)  // records them for an object with an open file
        } else if directory, let attributes = try? namespace.presentAttributes(id), attributes.type == .directory {
            tree.noteAttributes(id, attributes)
        }
    }

    /// Hard links cannot be stored (a path has one version history): EPERM, as on file systems
    /// without links; EROFS in the historical views.
    func link(_ req: fuse_req_t, _ id: fuse_ino_t, newParent: fuse_ino_t) {
        let historical = (try? presentObject(id)) == nil || (try? presentObject(newParent)) == nil
        fuse_reply_err(req, historical ? EROFS : EPERM)
    }

    // MARK: Attributes

    func setattr(_ req: fuse_req_t, _ id: fuse_ino_t, _ attr: stat, toSet: Int32, _ fi: UnsafeMutablePointer<fuse_file_info>?) {
        do {
            try requireWritableStore()
            let object = try presentObject(id)
            let who = provenance(req)
            let set = UInt32(bitPattern: toSet)
            let attributes = try namespace.pathLock.shared { () throws -> Attributes in
                let snapshot = tree.snapshot(object)
                // A handle of this call's own on the file's open file, if it has one: a release in
                // flight (the kernel sends them after close returns) must not drop it under us.
                let file = tree.attachExisting(object)
                var handed = false
                defer { if let file, !handed { try? finishHandle(object, file, fallback: who) } }
                if set & UInt32(FUSE_SET_ATTR_SIZE) != 0 {
                    let size = UInt64(max(attr.st_size, 0))
                    if let file {
                        // ftruncate through a descriptor open for writing is that handle's change.
                        var throughWriter = false
                        if let fi, case .presentFile(_, _, true)? = handle(fi.pointee.fh) { throughWriter = true }
                        try file.commitLock.withLock { (_: inout ()) throws in
                            if throughWriter || file.isDirtyOrPending {
                                // Committed with the writes, at flush or close.
                                try file.truncate(to: size, explicit: true, by: who, store: store)
                            } else {
                                // truncate(2) of a clean file (only readers have it open): an event
                                // now, as for a closed file.
                                guard let path = snapshot.path else { throw LayerError(.notFound, "removed from the present") }
                                try store.commit(.truncate(path: path, size: size), by: who)
                                file.reload(try store.stat(path))
                            }
                        }
                    } else {
                        guard let path = snapshot.path else { throw LayerError(.notFound, "removed from the present") }
                        try store.commit(.truncate(path: path, size: size), by: who)
                    }
                }
                var set = set
                if let file {
                    // Folded into a pending file's first commit only under its commit lock: a
                    // release in flight (the kernel sends it after close returns) may be committing
                    // it, its snapshot taken and its pending flag not yet cleared, and a mode set
                    // then would be lost (`touch f; chmod 600 f` left f 0644).
                    file.commitLock.withLock { (_: inout ()) in
                        if set & UInt32(FUSE_SET_ATTR_MODE) != 0, file.setPendingMode(attr.st_mode) {
                            set &= ~UInt32(FUSE_SET_ATTR_MODE)  // mkstemp + fchmod: folded into the first commit
                        }
                        if set & UInt32(FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID) != 0,
                            file.pendingOwnerMatches(
                                owner: set & UInt32(FUSE_SET_ATTR_UID) != 0 ? attr.st_uid : nil,
                                group: set & UInt32(FUSE_SET_ATTR_GID) != 0 ? attr.st_gid : nil)
                        {
                            set &= ~UInt32(FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)  // sed -i's fchown to the creator
                        }
                        if set & UInt32(FUSE_SET_ATTR_MTIME_NOW) != 0, file.touchPending() {
                            set &= ~UInt32(FUSE_SET_ATTR_MTIME_NOW | FUSE_SET_ATTR_MTIME)
                        }
                    }
                }
                let mask = UInt32(FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID | FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW)
                if set & mask != 0, let path = snapshot.path {
                    // Pending writes first, so these apply to (and are not undone by) the new content.
                    if let file { try commitLocked(object, file, fallback: who) }
                    if set & UInt32(FUSE_SET_ATTR_MODE) != 0 {
                        try store.commit(.chmod(path: path, mode: attr.st_mode & 0o7777), by: who)
                    }
                    let owner = set & UInt32(FUSE_SET_ATTR_UID) != 0 ? attr.st_uid : nil
                    let group = set & UInt32(FUSE_SET_ATTR_GID) != 0 ? attr.st_gid : nil
                    if owner != nil || group != nil {
                        try store.commit(.chown(path: path, owner: owner, group: group), by: who)
                    }
                    if set & UInt32(FUSE_SET_ATTR_MTIME_NOW) != 0 {
                        try store.commit(.setModificationTime(path: path, mtime: .now()), by: who)
                    } else if set & UInt32(FUSE_SET_ATTR_MTIME) != 0 {
                        let (scaled, overflow) = Int64(attr.st_mtim.tv_sec).multipliedReportingOverflow(by: 1_000_000_000)
                        guard !overflow else { throw LayerError(.invalidArgument, "modification time out of range", path: path) }
                        let mtime = Timestamp(nanoseconds: scaled &+ Int64(attr.st_mtim.tv_nsec))
                        try store.commit(.setModificationTime(path: path, mtime: mtime), by: who)
                    }
                }
                if let file {
                    handed = true
                    try finishHandle(object, file, fallback: who)  // commits if it was the last
                }
                return try namespace.presentAttributes(object)
            }
            var st = attributes.stat
            fuse_reply_attr(req, &st, Namespace.liveTimes.attributes)
        } catch {
            fuse_reply_err(req, errno(error, "setattr"))
        }
    }

    /// Extended attributes are provenance, computed from the log: they cannot be set or removed.
    func setOrRemoveXattr(_ req: fuse_req_t, _ id: fuse_ino_t) {
        fuse_reply_err(req, (try? presentObject(id)) == nil ? EROFS : ENOTSUP)
    }
}
