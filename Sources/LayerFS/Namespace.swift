import LayerCore
import LayerIndex
import Synchronization
import SystemPackage

/// What `stat` shows for a node, without any C type (the adapter turns it into `struct stat`).
public struct Attributes: Hashable, Sendable {
    public enum FileType: Sendable { case regular, directory, symlink }
    public var ino: UInt64
    public var type: FileType
    /// Permission bits (07777).
    public var permissions: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var size: UInt64
    public var mtime: Timestamp
    public var linkCount: UInt32
    /// st_ctime: the time of the event that produced the version (a write, truncate, chmod, chown
    /// or utimens; a rename keeps the version), or of an open file's last uncommitted write; nil:
    /// the mtime.
    public var ctime: Timestamp? = nil
}

/// A historical version's content, opened at the first read (nil info: a deletion marker, empty).
final class VersionContent: Sendable {
    let info: NodeInfo?
    private let opened = Mutex<FileContent?>(nil)

    init(_ info: NodeInfo?) { self.info = info }

    func content(_ store: Store) throws(LayerError) -> FileContent? {
        guard let info else { return nil }
        return try opened.withLock { (cached: inout FileContent?) throws(LayerError) -> FileContent? in
            if let cached { return cached }
            let content = try store.openContent(info)
            cached = content
            return content
        }
    }
}

/// One name in a directory listing.
public struct ListedEntry: Hashable, Sendable {
    public var name: String
    /// d_ino: the node's id when known (see `NodeID.unassignedDirectory`).
    public var ino: UInt64
    public var type: Attributes.FileType
}

/// How long the kernel may trust what it was told, in seconds.
public struct CacheTimes: Sendable {
    public var entry: Double
    public var attributes: Double
}

/// The mounted namespace over one store: which name is which node, what each node looks like, what
/// each directory lists. Pure Swift, no FUSE: the adapter (`LayerFilesystem`) calls it and replies.
///
/// ```
/// /                       the present (live, read-write); @ names hidden from readdir unless showAt
/// /@time/                 `latest` and the canonical time of every event (the last event at that time)
/// /@time/<T>/             the tree at the last event at or before T (any TimeExpression form, or latest)
/// /@block/                `latest` and the number of every sealed block
/// /@block/<n>/            the tree at block n's last event
/// /@history/<dir>/...     mirrors directories (children of the present), any name that ever existed resolves
/// /@history/<file>/       one read-only entry per version, named by the canonical time of the change;
///                         a deletion is an empty file `<time>.deleted`; a name repeated (two changes in
///                         one nanosecond) gets `~<seq>` appended
/// ```
///
/// A malformed or hostile name under an @ directory is ENOENT, never an error of another kind.
public final class Namespace: Sendable {
    public let store: Store
    public let table: NodeTable
    /// The present's live objects.
    let tree = PresentTree()
    /// Held shared to resolve a present id to its path and act on it; exclusively to move paths.
    let pathLock = ReadWriteLock()
    /// List @time, @block, @history and @similar in readdir of the root (mount option `show_at`).
    public let showAt: Bool
    /// `/@similar/`, over the similarity index (nil: mounted without one).
    let similar: SimilarView

    /// Cache times for immutable views (a day, as passthrough_hp uses) and for what can change.
    public static let immutableTimes = CacheTimes(entry: 86_400, attributes: 86_400)
    public static let liveTimes = CacheTimes(entry: 1, attributes: 1)

    public static let atNames = ["@time", "@block", "@history", "@similar"]

    public init(store: Store, showAt: Bool, similarity: SimilarityIndex? = nil) {
        self.store = store
        self.showAt = showAt
        self.similar = SimilarView(index: similarity)
        self.table = NodeTable()
    }

    // MARK: Lookup

    /// The node `name` names in directory `parent`. Throws LayerError (`.notFound` ...) or Errno.
    ///
    /// A present object found is *remembered* (one more kernel reference, `PresentTree.remember`):
    /// the caller must `forgetPresent` it if it does not reply with the entry. Other nodes are
    /// counted by the caller (`NodeTable.remember`).
    public func lookup(_ parent: Node, _ name: String) throws -> Node {
        switch parent {
        case .present(let id):
            if id == NodeID.root && name.hasPrefix("@") {
                switch name {
                case "@time": return .timeRoot
                case "@block": return .blockRoot
                case "@history": return .historyRoot
                case "@similar": return .similarRoot
                default: throw LayerError(.notFound, "names starting with @ at the root are reserved", path: "/" + name)
                }
            }
            // POSIX: in the present, a component over NAME_MAX is ENAMETOOLONG, for lookups too (as
            // for creating it). The views keep ENOENT for every name they cannot resolve.
            if name.utf8.count > StorePath.nameMax {
                throw LayerError(.nameTooLong, "a name is longer than \(StorePath.nameMax) bytes", path: name)
            }
            return try pathLock.shared { () throws -> Node in
                let child = try Self.childPath(presentPath(id), name)
                if tree.pendingID(child) == nil {
                    _ = try store.stat(child)
                }
                return .present(tree.remember(child))
            }
        case .directory(let view, let path):
            let child = try Self.childPath(path, name)
            let info = try store.stat(child, at: view.seq)
            return info.kind == .directory ? .directory(view, path: child) : .version(info)
        case .timeRoot:
            return .directory(try timeView(name), path: "/")
        case .blockRoot:
            return .directory(try blockView(name), path: "/")
        case .historyRoot:
            return try historyNode(Self.childPath("/", name))
        case .similarRoot:
            if name == ".status" { return .similarStatus }
            guard let (query, k) = SimilarView.parse(name) else {
                throw LayerError(.notFound, "not a query (names starting with '.' are reserved; see %XX escapes)", path: "/@similar")
            }
            _ = try similar.entries(query: query, k: k, depth: 1, namespace: self)  // fails while the index is unavailable
            return .similarQuery(query: query, k: k, depth: 1)
        case .similarQuery(let query, let k, let depth):
            if name.hasPrefix("+") {
                guard let (longer, k2) = SimilarView.parse(name, continuing: query) else {
                    throw LayerError(.notFound, "not a query continuation", path: "/@similar")
                }
                _ = try similar.entries(query: longer, k: k2, depth: depth + 1, namespace: self)
                return .similarQuery(query: longer, k: k2, depth: depth + 1)
            }
            guard let entry = try similar.entries(query: query, k: k, depth: depth, namespace: self).first(where: { $0.name == name }) else {
                throw LayerError(.notFound, "no such match", path: "/@similar")
            }
            return .similarResult(target: entry.target, seq: entry.seq)
        case .similarResult, .similarStatus:
            throw Errno.notDirectory
        case .historyDirectory(let path):
            return try historyNode(Self.childPath(path, name))
        case .historyVersions(let path):
            guard let found = try versionEntries(path).first(where: { $0.name == name }) else {
                throw LayerError(.notFound, "no version named \(name)", path: path)
            }
            return found.node
        case .version, .deletion:
            throw Errno.notDirectory
        }
    }

    /// `parent/name` as a store path; a name the store cannot hold is ENOENT.
    static func childPath(_ parent: String, _ name: String) throws -> String {
        do {
            try StorePath.checkName(name, path: parent)
        } catch {
            throw LayerError(.notFound, "no such name", path: parent)
        }
        return parent == "/" ? "/" + name : parent + "/" + name
    }

    /// `/@time/<name>`: `latest`, or any time expression at or after the first event.
    func timeView(_ name: String) throws -> View {
        let head = store.headSequence
        if name == "latest" { return View(kind: .time(name), seq: head, isImmutable: false) }
        let time: Timestamp
        do {
            time = try TimeExpression.parse(name)
        } catch {
            throw LayerError(.notFound, "not a time", path: "/@time")
        }
        let seq = try store.sequence(at: time)  // .outOfRange (ENOENT) before the first event
        // A time past the head's shows the head, which later events would change.
        // (Strictly before: a new event may still carry the head's time.)
        let immutable = try time < store.time(ofSequence: head)
        return View(kind: .time(name), seq: seq, isImmutable: immutable)
    }

    /// `/@block/<name>`: `latest`, or a sealed block's number in plain decimal.
    func blockView(_ name: String) throws -> View {
        let blocks = store.blocks
        let block: BlockHeader?
        if name == "latest" {
            block = blocks.last
        } else if let number = Self.plainDecimal(name) {
            block = blocks.first(where: { $0.number == number })
        } else {
            block = nil
        }
        guard let block else { throw LayerError(.notFound, "no such block", path: "/@block") }
        return View(kind: .block(name), seq: block.last, isImmutable: name != "latest")
    }

    /// Digits only, no sign, no leading zero (so each block has exactly one name), fits UInt64.
    static func plainDecimal(_ text: String) -> UInt64? {
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty, bytes.count <= 20, bytes.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
        guard bytes.count == 1 || bytes[0] != 48 else { return nil }
        return UInt64(text)
    }

    /// `/@history/<path>`: a directory of versions for a file or symlink, a directory of children for
    /// a directory (judged by its latest version); ENOENT for a path that never existed.
    func historyNode(_ path: String) throws -> Node {
        let changes = try store.history(path)
        guard let latest = changes.last(where: { $0.info != nil })?.info else {
            throw LayerError(.notFound, "no history", path: path)
        }
        return latest.kind == .directory ? .historyDirectory(path: path) : .historyVersions(path: path)
    }

    /// The entries of `/@history/<path>/` for a file or symlink, oldest first.
    func versionEntries(_ path: String) throws -> [(name: String, node: Node)] {
        var out: [(name: String, node: Node)] = []
        var used: Set<String> = []
        for change in try store.history(path) {
            let time = try store.time(ofSequence: change.seq).canonical
            let node: Node
            var name: String
            if let info = change.info {
                guard info.kind != .directory else { continue }  // a file's path that was once a directory
                node = .version(info)
                name = time
            } else {
                node = .deletion(path: path, seq: change.seq)
                name = time + ".deleted"
            }
            if used.contains(name) { name += "~\(change.seq)" }
            used.insert(name)
            out.append((name, node))
        }
        return out
    }

    /// The current path of a present object: ENOENT once it was unlinked or replaced.
    func presentPath(_ id: UInt64) throws -> String {
        guard let path = tree.path(id) else { throw LayerError(.notFound, "removed from the present") }
        return path
    }

    /// Drops references counted by `lookup` that were not given to the kernel.
    public func forgetPresent(_ id: UInt64, count: UInt64 = 1) { tree.forget(id, count: count) }

    /// The version a present object has in the store now (its last committed state).
    func presentInfo(_ id: UInt64) throws -> (path: String, info: NodeInfo) {
        let path = try presentPath(id)
        return (path, try store.stat(path))
    }

    // MARK: Attributes

    public func attributes(_ node: Node, id: UInt64) throws -> Attributes {
        switch node {
        case .present(let object):
            return try pathLock.shared { () throws -> Attributes in try presentAttributes(object) }
        case .directory(let view, let path):
            let info = try store.stat(path, at: view.seq)
            guard info.kind == .directory else { throw Errno.notDirectory }
            return Attributes(
                ino: id, type: .directory, permissions: info.mode & 0o7777, uid: info.uid, gid: info.gid,
                size: 0, mtime: info.mtime, linkCount: 2, ctime: try store.time(ofSequence: info.version))
        case .version(let info):
            return Self.attributes(of: info, id: id, ctime: try store.time(ofSequence: info.version))
        case .timeRoot, .blockRoot, .similarRoot, .similarQuery:
            return try syntheticDirectory(id: id, mtime: store.time(ofSequence: store.headSequence))
        case .historyRoot:
            return try historyDirectoryAttributes("/", id: id)
        case .similarResult(let target, let seq):
            return Attributes(
                ino: id, type: .symlink, permissions: 0o777, uid: 0, gid: 0, size: UInt64(target.utf8.count),
                mtime: try store.time(ofSequence: seq), linkCount: 1)
        case .similarStatus:
            return Attributes(
                ino: id, type: .regular, permissions: 0o444, uid: 0, gid: 0, size: UInt64(similar.statusText().utf8.count),
                mtime: try store.time(ofSequence: store.headSequence), linkCount: 1)
        case .historyDirectory(let path):
            return try historyDirectoryAttributes(path, id: id)
        case .historyVersions(let path):
            let last = try store.history(path).last?.seq ?? store.headSequence
            return try syntheticDirectory(id: id, mtime: store.time(ofSequence: last))
        case .deletion(_, let seq):
            return try Attributes(
                ino: id, type: .regular, permissions: 0o444, uid: 0, gid: 0, size: 0,
                mtime: store.time(ofSequence: seq), linkCount: 1)
        }
    }

    /// A present object's attributes: an open file's uncommitted size and mtime show at once; a
    /// detached object still open shows its last attributes with no links.
    func presentAttributes(_ id: UInt64) throws -> Attributes {
        let object = tree.snapshot(id)
        guard object.known else { throw Errno.staleNFSFileHandle }
        guard let path = object.path else {
            if let pending = object.file?.attributes(id: id, committed: nil) { return pending }
            guard var last = object.last else { throw LayerError(.notFound, "removed from the present") }
            last.linkCount = 0
            if let file = object.file, let live = file.attributes(id: id, committed: last) { last = live }
            last.linkCount = 0
            return last
        }
        if let file = object.file, file.isPending, let pending = file.attributes(id: id, committed: nil) {
            tree.noteAttributes(id, pending)
            return pending
        }
        let info = try store.stat(path)
        var attributes = Self.attributes(of: info, id: id, ctime: try store.time(ofSequence: info.version))
        if let file = object.file {
            attributes = file.attributes(id: id, committed: attributes) ?? attributes
            tree.noteAttributes(id, attributes)
        }
        return attributes
    }

    static func attributes(of info: NodeInfo, id: UInt64, ctime: Timestamp? = nil) -> Attributes {
        let type: Attributes.FileType =
            switch info.kind {
            case .file: .regular
            case .symlink: .symlink
            case .directory: .directory
            }
        return Attributes(
            ino: id, type: type, permissions: info.mode & 0o7777, uid: info.uid, gid: info.gid,
            size: info.size, mtime: info.mtime, linkCount: type == .directory ? 2 : 1, ctime: ctime)
    }

    /// `/@history/<dir>/` mirrors a directory: it has that directory's mode, owner and group (of
    /// its present version, or its last one if it is gone), so that a directory nobody else may
    /// search in the present cannot be searched or listed through @history either.
    func historyDirectoryAttributes(_ path: String, id: UInt64) throws -> Attributes {
        let changes = try store.history(path)
        let last = changes.last?.seq ?? store.headSequence
        let info: NodeInfo
        if let latest = changes.last(where: { $0.info?.kind == .directory })?.info {
            info = latest
        } else {
            info = try store.stat(path)  // the root, which no event creates
        }
        return try Attributes(
            ino: id, type: .directory, permissions: info.mode & 0o7777, uid: info.uid, gid: info.gid,
            size: 0, mtime: store.time(ofSequence: last), linkCount: 2)
    }

    private func syntheticDirectory(id: UInt64, mtime: Timestamp) -> Attributes {
        Attributes(ino: id, type: .directory, permissions: 0o555, uid: 0, gid: 0, size: 0, mtime: mtime, linkCount: 2)
    }

    /// How long the kernel may cache the entry for `node` found in `parent`, and its attributes.
    public func cacheTimes(_ node: Node, in parent: Node?) -> CacheTimes {
        switch node {
        case .present:
            return Self.liveTimes
        case .version, .deletion:
            // A version never changes; only the name → version mapping of a live view does.
            var times = Self.immutableTimes
            if let parent, !isImmutable(parent) { times.entry = Self.liveTimes.entry }
            return times
        default:
            return isImmutable(node) ? Self.immutableTimes : Self.liveTimes
        }
    }

    /// True for directories of immutable views (whose listing and entries never change).
    public func isImmutable(_ node: Node) -> Bool {
        if case .directory(let view, _) = node { return view.isImmutable }
        return false
    }

    // MARK: Listing

    /// The entries of a directory node, in a stable order (without `.` and `..`).
    public func list(_ node: Node) throws -> [ListedEntry] {
        switch node {
        case .present(let id):
            return try pathLock.shared { () throws -> [ListedEntry] in
                let path = try presentPath(id)
                var out: [ListedEntry] = []
                if path == "/" && showAt {
                    out.append(ListedEntry(name: "@time", ino: NodeID.timeRoot, type: .directory))
                    out.append(ListedEntry(name: "@block", ino: NodeID.blockRoot, type: .directory))
                    out.append(ListedEntry(name: "@history", ino: NodeID.historyRoot, type: .directory))
                    out.append(ListedEntry(name: "@similar", ino: NodeID.similarRoot, type: .directory))
                }
                for entry in try store.list(path) {
                    let type: Attributes.FileType =
                        switch entry.info.kind {
                        case .file: .regular
                        case .directory: .directory
                        case .symlink: .symlink
                        }
                    let ino = tree.existingID(StorePath.join(path, entry.name)) ?? NodeID.unassignedDirectory
                    out.append(ListedEntry(name: entry.name, ino: ino, type: type))
                }
                let pending = tree.pendingChildren(of: path)
                if !pending.isEmpty {
                    let committed = Set(out.map(\.name))
                    for p in pending where !committed.contains(p.name) {
                        out.append(ListedEntry(name: p.name, ino: p.id, type: .regular))
                    }
                }
                return out
            }
        case .directory(let view, let path):
            var out: [ListedEntry] = []
            for entry in try store.list(path, at: view.seq) {
                let childPath = path == "/" ? "/" + entry.name : path + "/" + entry.name
                let child: Node = entry.info.kind == .directory ? .directory(view, path: childPath) : .version(entry.info)
                out.append(listed(entry.name, child))
            }
            return out
        case .timeRoot:
            var out = [listed("latest", .directory(try timeView("latest"), path: "/"))]
            // Of several events in one nanosecond only the last is listed (the one the name resolves to).
            let times = store.distinctEventTimes()
            out.reserveCapacity(times.count + 1)
            for entry in times {
                out.append(ListedEntry(name: entry.time.canonical, ino: NodeID.unassignedDirectory, type: .directory))
            }
            return out
        case .blockRoot:
            let blocks = store.blocks
            guard !blocks.isEmpty else { return [] }
            var out = [ListedEntry(name: "latest", ino: NodeID.unassignedDirectory, type: .directory)]
            for block in blocks {
                out.append(listed(String(block.number), .directory(View(kind: .block(String(block.number)), seq: block.last, isImmutable: true), path: "/")))
            }
            return out
        case .historyRoot:
            return try historyChildren("/")
        case .similarRoot:
            return [ListedEntry(name: ".status", ino: table.existingID(.similarStatus) ?? NodeID.unassignedDirectory, type: .regular)]
        case .similarQuery(let query, let k, let depth):
            return try similar.entries(query: query, k: k, depth: depth, namespace: self).map { entry in
                let node = Node.similarResult(target: entry.target, seq: entry.seq)
                return ListedEntry(name: entry.name, ino: table.existingID(node) ?? NodeID.unassignedDirectory, type: .symlink)
            }
        case .similarResult, .similarStatus:
            throw Errno.notDirectory
        case .historyDirectory(let path):
            return try historyChildren(path)
        case .historyVersions(let path):
            return try versionEntries(path).map { listed($0.name, $0.node) }
        case .version, .deletion:
            throw Errno.notDirectory
        }
    }

    /// The children of a directory in the present, as `/@history` shows them (other names that
    /// once existed there resolve by lookup but are not listed).
    private func historyChildren(_ path: String) throws -> [ListedEntry] {
        var entries: [Store.DirectoryEntry] = []
        do throws(LayerError) {
            entries = try store.list(path)
        } catch where error.code == .notFound || error.code == .notDirectory {
            // the directory is gone from the present: nothing to list
        } catch {
            throw error
        }
        return entries.map { entry in
            let childPath = path == "/" ? "/" + entry.name : path + "/" + entry.name
            let node: Node = entry.info.kind == .directory ? .historyDirectory(path: childPath) : .historyVersions(path: childPath)
            return listed(entry.name, node)
        }
    }

    private func listed(_ name: String, _ node: Node) -> ListedEntry {
        switch node {
        case .version(let info):
            return ListedEntry(name: name, ino: NodeID.version(info), type: info.kind == .symlink ? .symlink : .regular)
        case .deletion:
            return ListedEntry(name: name, ino: table.existingID(node) ?? NodeID.unassignedDirectory, type: .regular)
        default:
            return ListedEntry(name: name, ino: table.existingID(node) ?? NodeID.unassignedDirectory, type: .directory)
        }
    }

    // MARK: Content and provenance

    /// A historical file node's content, for ranged reads (a deletion marker reads as empty).
    public func content(_ node: Node) throws -> FileContent? {
        try versionContent(node).content(store)
    }

    /// The same, read only when first needed: an open that is served from the kernel's page cache
    /// (keep_cache) never decodes the event.
    func versionContent(_ node: Node) throws -> VersionContent {
        switch node {
        case .present, .similarResult, .similarStatus: throw Errno.invalidArgument
        case .version(let info) where info.kind == .file: return VersionContent(info)
        case .version: throw Errno.invalidArgument
        case .deletion: return VersionContent(nil)
        default: throw Errno.isDirectory
        }
    }

    public func linkTarget(_ node: Node) throws -> String {
        if case .present(let id) = node {
            let info = try pathLock.shared { () throws -> NodeInfo in try presentInfo(id).info }
            guard info.kind == .symlink else { throw Errno.invalidArgument }
            return try store.readLink(info)
        }
        if case .similarResult(let target, _) = node { return target }
        guard case .version(let info) = node, info.kind == .symlink else { throw Errno.invalidArgument }
        return try store.readLink(info)
    }

    /// Every extended attribute layerfs shows starts with this.
    public static let xattrPrefix = "user.layerfs."

    /// The Merkle inclusion proof of a version's event in its block (`layerfs prove`'s output),
    /// listed only once the event is sealed. Computed when asked for, not when listed.
    public static let proofAttribute = "user.layerfs.proof"

    /// The event that produced a node's version (or recorded a deletion); nil for directories and
    /// the @ views' own entries.
    private func eventSequence(_ node: Node) throws -> UInt64? {
        switch node {
        case .present(let id):
            let info = try pathLock.shared { () throws -> NodeInfo in try presentInfo(id).info }
            return info.kind == .directory ? nil : info.version
        case .version(let info): return info.version
        case .deletion(_, let s): return s
        default: return nil
        }
    }

    /// One extended attribute's value, or nil when the node has no attribute of that name.
    public func extendedAttribute(_ node: Node, name: String) throws -> [UInt8]? {
        if name == Namespace.proofAttribute {
            guard let seq = try eventSequence(node), store.blocks.last.map({ seq <= $0.last }) == true else { return nil }
            return try store.inclusionProof(seq: seq).encoded
        }
        return try extendedAttributes(node).first(where: { $0.name == name }).map { Array($0.value.utf8) }
    }

    /// The names of a node's extended attributes, in a fixed order.
    public func extendedAttributeNames(_ node: Node) throws -> [String] {
        let attributes = try extendedAttributes(node)
        return attributes.map(\.name) + (attributes.contains { $0.name == "user.layerfs.block" } ? [Namespace.proofAttribute] : [])
    }

    /// The extended attributes of a node: provenance of the event that produced a version (or
    /// recorded a deletion). Directories have none. Names in a fixed order. (The proof is apart:
    /// `extendedAttribute(_:name:)`.)
    public func extendedAttributes(_ node: Node) throws -> [(name: String, value: String)] {
        guard let seq = try eventSequence(node) else { return [] }
        let event = try store.event(seq)
        var out: [(name: String, value: String)] = [
            ("user.layerfs.seq", String(seq)),
            ("user.layerfs.hash", event.hash.hex),
            ("user.layerfs.time", event.time.canonical),
            ("user.layerfs.uid", String(event.provenance.uid)),
            ("user.layerfs.gid", String(event.provenance.gid)),
            ("user.layerfs.pid", String(event.provenance.pid)),
            ("user.layerfs.process", event.provenance.process),
        ]
        if let block = store.blocks.first(where: { $0.first <= seq && seq <= $0.last }) {
            out.append(("user.layerfs.block", String(block.number)))
        }
        return out
    }
}
