// The FUSE adapter: libfuse low-level callbacks over `Namespace`.
//
// Caching and consistency contract:
// - The present is read-write (unless mounted `ro`): its objects are live (`PresentTree`), cached
//   for 1 s, opened without keep_cache. Changes commit as events (see Writes.swift).
// - A historical file or symlink version never changes: attributes are cached for a day and every
//   open sets keep_cache (one inode per version, so its pages are cached once for all views).
// - Entries and directories of immutable views (a time before the head's, a sealed block) are
//   cached for a day (entry, attributes, negative lookups, readdir via cache_readdir).
// - `latest`, the head's time and the @ directories (which grow with new events) use 1 s.
//
// Threads: libfuse calls these from its worker threads (fuse_session_loop_mt). State is in the
// node table's and the handle table's mutexes; neither is held while calling the store or replying.

import CFuse3
import LayerCore
import Logging
import Synchronization
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// The filesystem object the callbacks reach through the session's userdata pointer.
public final class LayerFilesystem: Sendable {
    public let namespace: Namespace
    let logger: Logger

    /// What an open file or directory handle (`fi->fh`) holds.
    enum Handle {
        /// A historical version's content, opened at the first read. Read by ranges.
        case file(VersionContent)
        /// Generated text (`/@similar/.status`), fixed at open.
        case bytes([UInt8])
        /// A present file: its shared open-file state.
        case presentFile(id: UInt64, file: OpenFile, writable: Bool)
        /// A directory's entries, listed once at opendir so that offsets stay valid.
        case directory(self: UInt64, entries: [ListedEntry])
    }

    struct Handles {
        var open: [UInt64: Handle] = [:]
        var next: UInt64 = 1
    }

    /// Open handles. Protected by its mutex; taken after (never while holding) the node table's.
    private let handles = Mutex(Handles())

    /// Thread id → process and name, for provenance.
    let provenanceCache = ProvenanceCache()

    public init(namespace: Namespace, logger: Logger) {
        self.namespace = namespace
        self.logger = logger
    }

    func addHandle(_ handle: Handle) -> UInt64 {
        handles.withLock { h in
            let id = h.next
            h.next += 1
            h.open[id] = handle
            return id
        }
    }

    func handle(_ id: UInt64) -> Handle? { handles.withLock { $0.open[id] } }

    func removeHandle(_ id: UInt64) { handles.withLock { _ = $0.open.removeValue(forKey: id) } }

    /// Open handles (tests and diagnostics).
    public var openHandleCount: Int { handles.withLock { $0.open.count } }

    /// The node for `id`, or ESTALE when the kernel names one it was never given (a bug).
    func node(_ id: fuse_ino_t) throws -> Node {
        if NodeID.isPresent(id) {
            guard namespace.tree.contains(id) else {
                logger.warning("the kernel named unknown present object \(id)")
                throw Errno.staleNFSFileHandle
            }
            return .present(id)
        }
        guard let node = namespace.table.node(id) else {
            logger.warning("the kernel named unknown node \(id)")
            throw Errno.staleNFSFileHandle
        }
        return node
    }

    func errno(_ error: any Error, _ operation: StaticString) -> Int32 {
        ErrorMapping.errno(for: error, operation: operation, logger: logger)
    }
}

/// Caches the process (and its name) of the threads that send requests. An entry is trusted for
/// a second: thread ids are reused, and a process may rename itself (exec).
final class ProvenanceCache: Sendable {
    struct Entry {
        var provenance: Provenance
        var expires: Timestamp
    }
    private let entries = Mutex([Int32: Entry]())

    func provenance(uid: UInt32, gid: UInt32, thread: Int32) -> Provenance {
        let now = Timestamp.now()
        if let hit = entries.withLock({ $0[thread] }), hit.expires > now, hit.provenance.uid == uid, hit.provenance.gid == gid {
            return hit.provenance
        }
        let pid = Provenance.processID(ofThread: thread) ?? thread
        let name = Provenance.processName(pid: pid) ?? "unknown"
        let provenance = Provenance(uid: uid, gid: gid, pid: pid, process: name)
        entries.withLock { e in
            if e.count >= 4096 { e.removeAll(keepingCapacity: true) }
            e[thread] = Entry(provenance: provenance, expires: Timestamp(nanoseconds: now.nanoseconds + 1_000_000_000))
        }
        return provenance
    }
}

// MARK: - Converting to C

extension Attributes {
    /// The `struct stat` for these attributes.
    var stat: stat {
        var st = Glibc.stat()
        st.st_ino = UInt(ino)
        let typeBits: UInt32 =
            switch type {
            case .regular: S_IFREG
            case .directory: S_IFDIR
            case .symlink: S_IFLNK
            }
        st.st_mode = typeBits | permissions
        st.st_nlink = UInt(linkCount)
        st.st_uid = uid
        st.st_gid = gid
        st.st_size = Int(clamping: size)
        st.st_blksize = 4096
        st.st_blocks = Int((size + 511) / 512)
        let time = timespec(tv_sec: Int(mtime.seconds), tv_nsec: Int(mtime.subsecondNanoseconds))
        st.st_mtim = time
        st.st_atim = time  // no atime is kept: the mtime
        let changed = ctime ?? mtime
        st.st_ctim = timespec(tv_sec: Int(changed.seconds), tv_nsec: Int(changed.subsecondNanoseconds))
        return st
    }
}

extension ListedEntry {
    var typeBits: UInt32 {
        switch type {
        case .regular: S_IFREG
        case .directory: S_IFDIR
        case .symlink: S_IFLNK
        }
    }
}

// MARK: - Operations

extension LayerFilesystem {
    /// `lookup`: one more reference on success (replied with `fuse_reply_entry`); a miss in an
    /// immutable view is replied as a negative entry (ino 0) the kernel may cache.
    func lookup(_ req: fuse_req_t, parent: fuse_ino_t, name: String) {
        var entry = fuse_entry_param()
        do {
            let parentNode = try node(parent)
            let child: Node
            do {
                child = try namespace.lookup(parentNode, name)
            } catch let error as LayerError where error.posixErrno == ENOENT && namespace.isImmutable(parentNode) {
                entry.ino = 0
                entry.entry_timeout = Namespace.immutableTimes.entry
                fuse_reply_entry(req, &entry)
                return
            }
            var attributes: Attributes
            if case .present(let childID) = child {
                // Counted by the namespace's lookup: undone if the attributes fail.
                do { attributes = try namespace.attributes(child, id: childID) } catch {
                    namespace.forgetPresent(childID)
                    throw error
                }
            } else {
                let id = namespace.table.existingID(child) ?? 0
                attributes = try namespace.attributes(child, id: id)
                // Counted only once everything that can fail has succeeded: the reply below is sent.
                attributes.ino = namespace.table.remember(child)
            }
            let times = namespace.cacheTimes(child, in: parentNode)
            entry.ino = attributes.ino
            entry.attr = attributes.stat
            entry.attr_timeout = times.attributes
            entry.entry_timeout = times.entry
            fuse_reply_entry(req, &entry)
        } catch {
            fuse_reply_err(req, errno(error, "lookup"))
        }
    }

    func forget(_ id: fuse_ino_t, count: UInt64) {
        if NodeID.isPresent(id) {
            namespace.tree.forget(id, count: count)
        } else {
            namespace.table.forget(id, count: count)
        }
    }

    func getattr(_ req: fuse_req_t, _ id: fuse_ino_t) {
        do {
            let node = try node(id)
            var st = try namespace.attributes(node, id: id).stat
            fuse_reply_attr(req, &st, namespace.cacheTimes(node, in: nil).attributes)
        } catch {
            fuse_reply_err(req, errno(error, "getattr"))
        }
    }

    func readlink(_ req: fuse_req_t, _ id: fuse_ino_t) {
        do {
            let target = try namespace.linkTarget(node(id))
            fuse_reply_readlink(req, target)
        } catch {
            fuse_reply_err(req, errno(error, "readlink"))
        }
    }

    func open(_ req: fuse_req_t, _ id: fuse_ino_t, _ fi: UnsafeMutablePointer<fuse_file_info>) {
        do {
            let node = try node(id)
            if case .present = node {
                try openPresent(req, id, fi)
                return
            }
            let flags = fi.pointee.flags
            if flags & O_ACCMODE != O_RDONLY || flags & O_TRUNC != 0 { throw Errno.readOnlyFileSystem }
            guard !node.isViewDirectory else { throw Errno.isDirectory }
            if case .similarStatus = node {
                fi.pointee.fh = addHandle(.bytes(Array(namespace.similar.statusText().utf8)))
                fi.pointee.direct_io = 1  // generated at each open: its size may differ from getattr's
                if fuse_reply_open(req, fi) != 0 { removeHandle(fi.pointee.fh) }
                return
            }
            fi.pointee.fh = addHandle(.file(try namespace.versionContent(node)))
            fi.pointee.keep_cache = 1  // the version's content never changes
            fi.pointee.noflush = 1  // nothing to commit: spare close(2) a round trip
            if fuse_reply_open(req, fi) != 0 { removeHandle(fi.pointee.fh) }  // interrupted: no release will come
        } catch {
            fuse_reply_err(req, errno(error, "open"))
        }
    }

    func read(_ req: fuse_req_t, size: Int, offset: Int, _ fi: UnsafeMutablePointer<fuse_file_info>) {
        switch handle(fi.pointee.fh) {
        case .file(let version)?:
            let content: FileContent?
            do { content = try version.content(namespace.store) } catch {
                fuse_reply_err(req, errno(error, "read"))
                return
            }
            guard let content, offset >= 0, UInt64(offset) < content.size, size > 0 else {
                fuse_reply_buf(req, nil, 0)
                return
            }
            let count = Int(min(UInt64(size), content.size - UInt64(offset)))
            if let fd = content.blobDescriptor {
                Self.replyFromDescriptor(req, fd: fd, offset: offset, count: count)
                return
            }
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: count, alignment: 16)
            defer { buffer.deallocate() }
            do {
                let n = try content.read(offset: UInt64(offset), into: buffer)
                fuse_reply_buf(req, buffer.baseAddress?.assumingMemoryBound(to: CChar.self), n)
            } catch {
                fuse_reply_err(req, errno(error, "read"))
            }
            return
        case .presentFile(_, let file, _)?:
            do {
                if let (content, count) = try file.blobRange(offset: offset, count: size, store: namespace.store),
                    let fd = content.blobDescriptor
                {
                    // Clean and in a blob: `content` stays alive until the reply is sent.
                    withExtendedLifetime(content) { Self.replyFromDescriptor(req, fd: fd, offset: offset, count: count) }
                    return
                }
                try file.withBytes(offset: offset, count: size, store: namespace.store) { bytes in
                    _ = fuse_reply_buf(req, bytes.baseAddress?.assumingMemoryBound(to: CChar.self), bytes.count)
                }
            } catch {
                fuse_reply_err(req, errno(error, "read"))
            }
            return
        case .bytes(let bytes)?:
            let start = min(max(offset, 0), bytes.count)
            let end = min(start + max(size, 0), bytes.count)
            bytes.withUnsafeBytes { raw in
                _ = fuse_reply_buf(req, raw.baseAddress.map { ($0 + start).assumingMemoryBound(to: CChar.self) }, end - start)
            }
        default:
            fuse_reply_err(req, EBADF)
        }
    }

    /// Replies to a read with `count` bytes of `fd` at `offset`, which libfuse splices into the
    /// reply (pages move from the blob's page cache; nothing is copied through this process).
    static func replyFromDescriptor(_ req: fuse_req_t, fd: Int32, offset: Int, count: Int) {
        var vector = fuse_bufvec()
        vector.count = 1
        vector.idx = 0
        vector.off = 0
        vector.buf.size = count
        vector.buf.flags = fuse_buf_flags(rawValue: FUSE_BUF_IS_FD.rawValue | FUSE_BUF_FD_SEEK.rawValue)
        vector.buf.fd = fd
        vector.buf.pos = off_t(offset)
        vector.buf.mem = nil
        fuse_reply_data(req, &vector, FUSE_BUF_SPLICE_MOVE)
    }

    func release(_ req: fuse_req_t, _ fi: UnsafeMutablePointer<fuse_file_info>) {
        if case .presentFile(let id, let file, _)? = handle(fi.pointee.fh) {
            releasePresent(req, id: id, file: file)
        }
        removeHandle(fi.pointee.fh)
        fuse_reply_err(req, 0)
    }

    func opendir(_ req: fuse_req_t, _ id: fuse_ino_t, _ fi: UnsafeMutablePointer<fuse_file_info>) {
        do {
            let node = try node(id)
            let entries = try namespace.list(node)
            fi.pointee.fh = addHandle(.directory(self: id, entries: entries))
            if namespace.isImmutable(node) {
                fi.pointee.keep_cache = 1
                fi.pointee.cache_readdir = 1
            }
            if fuse_reply_open(req, fi) != 0 { removeHandle(fi.pointee.fh) }
        } catch {
            fuse_reply_err(req, errno(error, "opendir"))
        }
    }

    /// Offsets: 1 is after `.`, 2 after `..`, 2 + i + 1 after entry i.
    func readdir(_ req: fuse_req_t, size: Int, offset: Int, _ fi: UnsafeMutablePointer<fuse_file_info>) {
        guard case .directory(let selfID, let entries)? = handle(fi.pointee.fh) else {
            fuse_reply_err(req, EBADF)
            return
        }
        var buffer = [CChar](repeating: 0, count: size)
        var used = 0
        var position = max(offset, 0)
        buffer.withUnsafeMutableBufferPointer { out in
            while position < entries.count + 2 {
                let name: String
                var st = Glibc.stat()
                switch position {
                case 0:
                    name = "."
                    st.st_ino = UInt(selfID)
                    st.st_mode = S_IFDIR
                case 1:
                    name = ".."
                    st.st_ino = UInt(NodeID.unassignedDirectory)
                    st.st_mode = S_IFDIR
                default:
                    let entry = entries[position - 2]
                    name = entry.name
                    st.st_ino = UInt(entry.ino)
                    st.st_mode = entry.typeBits
                }
                let needed = fuse_add_direntry(req, out.baseAddress! + used, size - used, name, &st, off_t(position + 1))
                if needed > size - used { break }
                used += needed
                position += 1
            }
            fuse_reply_buf(req, out.baseAddress, used)
        }
    }

    /// `readdirplus`: entries with their attributes, each counted as a lookup (so `ls -l` needs no
    /// LOOKUP per entry). `.`, `..` and the entries of the @ directories go without (ino 0: the
    /// kernel looks them up if it needs them), so listing `/@time` creates no nodes.
    func readdirplus(_ req: fuse_req_t, size: Int, offset: Int, _ fi: UnsafeMutablePointer<fuse_file_info>) {
        guard case .directory(let selfID, let entries)? = handle(fi.pointee.fh) else {
            fuse_reply_err(req, EBADF)
            return
        }
        let parent: Node
        do { parent = try node(selfID) } catch {
            fuse_reply_err(req, errno(error, "readdirplus"))
            return
        }
        let withAttributes: Bool =
            switch parent {
            case .timeRoot, .blockRoot: false
            default: true
            }
        var buffer = [CChar](repeating: 0, count: size)
        var used = 0
        var position = max(offset, 0)
        buffer.withUnsafeMutableBufferPointer { out in
            while position < entries.count + 2 {
                var entry = fuse_entry_param()
                let name: String
                var counted: Node? = nil
                switch position {
                case 0:
                    name = "."
                    entry.attr.st_ino = UInt(selfID)
                    entry.attr.st_mode = S_IFDIR
                case 1:
                    name = ".."
                    entry.attr.st_ino = UInt(NodeID.unassignedDirectory)
                    entry.attr.st_mode = S_IFDIR
                default:
                    let listed = entries[position - 2]
                    name = listed.name
                    entry.attr.st_ino = UInt(listed.ino)
                    entry.attr.st_mode = listed.typeBits
                    if withAttributes, let child = try? namespace.lookup(parent, name) {
                        // A present child is counted by the lookup; others are counted here.
                        let id: UInt64
                        if case .present(let presentID) = child { id = presentID } else { id = namespace.table.remember(child) }
                        if var attributes = try? namespace.attributes(child, id: id) {
                            attributes.ino = id
                            let times = namespace.cacheTimes(child, in: parent)
                            entry.ino = id
                            entry.attr = attributes.stat
                            entry.attr_timeout = times.attributes
                            entry.entry_timeout = times.entry
                            counted = child
                        } else {
                            forgetCounted(child, id: id)
                        }
                    }
                }
                let needed = fuse_add_direntry_plus(req, out.baseAddress! + used, size - used, name, &entry, off_t(position + 1))
                if needed > size - used {
                    if let counted { forgetCounted(counted, id: entry.ino) }  // not sent
                    break
                }
                used += needed
                position += 1
            }
            fuse_reply_buf(req, out.baseAddress, used)
        }
    }

    /// Drops a reference counted for an entry that was not sent after all.
    private func forgetCounted(_ node: Node, id: UInt64) {
        if case .present = node { namespace.tree.forget(id, count: 1) } else { namespace.table.forget(id, count: 1) }
    }

    func releasedir(_ req: fuse_req_t, _ fi: UnsafeMutablePointer<fuse_file_info>) {
        removeHandle(fi.pointee.fh)
        fuse_reply_err(req, 0)
    }

    /// `statfs`: the space of the filesystem holding the store (what commits can use), names of
    /// at most NAME_MAX bytes.
    func statfs(_ req: fuse_req_t) {
        var st = statvfs()
        if statvfs(namespace.store.path, &st) != 0 {
            st = statvfs()
            st.f_bsize = 4096
            st.f_frsize = 4096
        }
        st.f_namemax = UInt(StorePath.nameMax)
        st.f_fsid = 0
        fuse_reply_statfs(req, &st)
    }

    /// `getxattr`: size 0 asks for the value's length; a buffer too small is ERANGE.
    func getxattr(_ req: fuse_req_t, _ id: fuse_ino_t, name: String, size: Int) {
        // Only user.layerfs.* exists. Other user.* names: ENODATA. Security labels and POSIX ACLs
        // (security.*, system.*, trusted.*) are not supported: ENOTSUP, which also tells `ls -l`
        // to stop asking every file of this filesystem for them (it remembers the device).
        guard name.hasPrefix(Namespace.xattrPrefix) else {
            fuse_reply_err(req, name.hasPrefix("user.") ? ENODATA : EOPNOTSUPP)
            return
        }
        do {
            guard let value = try namespace.extendedAttribute(node(id), name: name) else { throw Errno.noData }
            // The kernel takes at most XATTR_SIZE_MAX (64 KiB): a proof of an event with large
            // inline content can exceed it (`layerfs prove` prints it whatever its size).
            guard value.count <= 65536 else { throw Errno.argListTooLong }
            try replyBytes(req, value, size: size)
        } catch {
            fuse_reply_err(req, errno(error, "getxattr"))
        }
    }

    func listxattr(_ req: fuse_req_t, _ id: fuse_ino_t, size: Int) {
        do {
            var bytes: [UInt8] = []
            for name in try namespace.extendedAttributeNames(node(id)) {
                bytes += Array(name.utf8) + [0]
            }
            try replyBytes(req, bytes, size: size)
        } catch {
            fuse_reply_err(req, errno(error, "listxattr"))
        }
    }

    private func replyBytes(_ req: fuse_req_t, _ bytes: [UInt8], size: Int) throws {
        if size == 0 {
            fuse_reply_xattr(req, bytes.count)
        } else if size < bytes.count {
            throw Errno.outOfRange
        } else {
            _ = bytes.withUnsafeBytes { fuse_reply_buf(req, $0.baseAddress?.assumingMemoryBound(to: CChar.self), $0.count) }
        }
    }
}
