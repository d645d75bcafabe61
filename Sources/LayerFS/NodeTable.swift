import LayerCore
import Synchronization

/// Which historical view a directory node belongs to. The name the view
/// was reached by is part of its identity, so `/@time/2026-11-21` and `/@time/<its canonical
/// form>` are two directories with equal content, never one directory under two names (the kernel
/// would have to move a directory alias between them; see `NodeTable`).
public enum ViewKind: Hashable, Sendable {
    /// `/@time/<name>/`: `name` exactly as looked up (any `TimeExpression` form, or `latest`).
    case time(String)
    /// `/@block/<name>/`: a block number in decimal, or `latest`.
    case block(String)
}

/// A historical tree: the state as of one event.
public struct View: Hashable, Sendable {
    public var kind: ViewKind
    /// The event whose state the view shows.
    public var seq: UInt64
    /// True when nothing can ever change in this view (a time at or before the head's, a sealed
    /// block): the kernel may cache its entries and attributes for a day.
    public var isImmutable: Bool
}

/// One node of the mounted namespace.
///
/// Identity rules (DESIGN.md, "Views and identity"):
/// - The **present** is live: its files, directories and symlinks are objects (`PresentTree`) whose
///   id stays the same while they are written, renamed or chmodded, as on any filesystem.
/// - A file or symlink **version** in a historical view is one node wherever it shows (any `/@time`
///   or `/@block` view, `/@history`): its id is derived from `NodeInfo.version`, the sequence number
///   of the event that produced it, which no other version has.
/// - A **directory** of a view is keyed by (view, path): its children differ between times, so
///   directories are never shared between views.
/// - Synthetic directories (`/@time`, `/@block`, `/@history`, the per-element history
///   directories) and deletion markers get ids from the synthetic range.
public enum Node: Hashable, Sendable {
    /// An object of the present (file, directory or symlink), by its live id (`NodeID.root` is /).
    case present(UInt64)
    /// A directory of a historical view ("/" is the view's root).
    case directory(View, path: String)
    /// A file or symlink version.
    case version(NodeInfo)
    case timeRoot
    case blockRoot
    case historyRoot
    /// `/@similar/`: query directories by name, and `.status`.
    case similarRoot
    /// `/@similar/<query>/` (and `+<more>` continuations): the matches, as symlinks. `depth` is
    /// how many directories below `/@similar` it is (for the symlinks' relative targets).
    case similarQuery(query: String, k: Int, depth: Int)
    /// One match: a symlink to the version in `/@history`.
    case similarResult(target: String, seq: UInt64)
    /// `/@similar/.status`: the index's state, as text.
    case similarStatus
    /// `/@history/<path>/` for a path whose latest version is a directory: lists its children.
    case historyDirectory(path: String)
    /// `/@history/<path>/` for a file or symlink: one entry per version, named by canonical time.
    case historyVersions(path: String)
    /// `<time>.deleted` in a `historyVersions` directory: the deletion of `path` by event `seq`.
    case deletion(path: String, seq: UInt64)

    /// Whether the node is a directory of a historical view or an @ directory (present objects
    /// may be either: ask the store).
    public var isViewDirectory: Bool {
        switch self {
        case .version, .deletion, .present, .similarResult, .similarStatus: return false
        default: return true
        }
    }
}

/// The layout of node ids (which are also the inode numbers the kernel shows).
///
/// ```
/// 1                      the present's root (FUSE_ROOT_ID)
/// 2, 3, 4, 5             /@time, /@block, /@history, /@similar
/// 16 + version           a file or symlink version in a historical view: 16 ... 2^61 - 1
/// 2^61 | n (n >= 1)      an object of the present (`PresentTree`), numbered as first met
/// 2^62 | n (n >= 1)      every other node, numbered as first met in this mount
/// ```
///
/// Versions are sequence numbers, far below 2^61 - 16, so the ranges never meet. Synthetic ids are
/// never reused within a mount: a node keeps its id while the kernel holds it and for a while after it
/// forgot it; a node that lost its id gets a new one (see `NodeTable`).
public enum NodeID {
    public static let root: UInt64 = 1
    public static let timeRoot: UInt64 = 2
    public static let blockRoot: UInt64 = 3
    public static let historyRoot: UInt64 = 4
    public static let similarRoot: UInt64 = 5
    public static let versionBase: UInt64 = 16
    public static let presentFlag: UInt64 = 1 << 61
    public static let syntheticFlag: UInt64 = 1 << 62
    /// d_ino reported by readdir for a directory the kernel has not looked up yet (readdir must not
    /// create nodes; `stat` always shows the real inode).
    public static let unassignedDirectory: UInt64 = 0xFFFF_FFFF

    public static func version(_ info: NodeInfo) -> UInt64 { versionBase + info.version }

    public static func isSynthetic(_ id: UInt64) -> Bool { id & syntheticFlag != 0 }

    /// The present's root or one of its objects.
    public static func isPresent(_ id: UInt64) -> Bool { id == root || (id & presentFlag != 0 && id & syntheticFlag == 0) }
}

/// Node ids → nodes of the historical views and the @ directories, with the kernel's lookup
/// counts. (The present's objects are in `PresentTree`.)
///
/// Every `fuse_reply_entry` adds one to the node's count (`remember`); `forget` and `forget_multi`
/// subtract what the kernel says; at zero the entry goes, under the same lock, so a lookup racing
/// a forget either finds the entry (and counts) or creates it again. The fixed ids (root and the
/// three @ directories) are always resolvable.
///
/// Synthetic ids are kept in `syntheticIDs` (node → id) while the kernel holds the node, and after
/// it forgot it for as long as the node is among the `forgottenLimit` most recently forgotten ones,
/// so a directory has one inode number while anything uses it and across short gaps: `find` and
/// `du` rely on a directory's (dev, ino) not changing under them, and they hold it (open, cwd)
/// while they walk it. Older forgotten nodes lose their id (never reused: the next lookup gets a
/// new one), so memory stays bounded by what the kernel holds plus `forgottenLimit` entries, however
/// many distinct directories (`/@time/<t>/...`) a mount visits over its life.
///
/// All state lives inside one `Mutex`; no lock is held while calling the store or the kernel.
public final class NodeTable: Sendable {
    struct Entry {
        var node: Node
        var lookups: UInt64
    }

    struct State {
        /// Live nodes (lookup count > 0). Protected by `state`.
        var entries: [UInt64: Entry] = [:]
        /// Every synthetic node met in this mount and its id. Protected by `state`.
        var syntheticIDs: [Node: UInt64] = [:]
        /// Synthetic nodes whose lookup count fell to zero, oldest first, from `forgottenStart`
        /// (a node may be listed more than once). Protected by `state`.
        var forgotten: [Node] = []
        var forgottenStart = 0
        var nextSynthetic: UInt64 = 1
    }

    private let state = Mutex(State())

    /// How many forgotten synthetic nodes keep their ids.
    public let forgottenLimit: Int

    public init(forgottenLimit: Int = 8192) {
        self.forgottenLimit = max(forgottenLimit, 0)
    }

    /// The id of a fixed or version node, or nil for a synthetic one.
    private func fixedID(_ node: Node) -> UInt64? {
        switch node {
        case .present(let id): return id
        case .timeRoot: return NodeID.timeRoot
        case .blockRoot: return NodeID.blockRoot
        case .historyRoot: return NodeID.historyRoot
        case .similarRoot: return NodeID.similarRoot
        case .version(let info): return NodeID.version(info)
        default: return nil
        }
    }

    private static func assign(_ node: Node, _ s: inout State) -> UInt64 {
        if let id = s.syntheticIDs[node] { return id }
        let id = NodeID.syntheticFlag | s.nextSynthetic
        s.nextSynthetic += 1
        s.syntheticIDs[node] = id
        return id
    }

    /// Records one more kernel reference to `node` (call right before `fuse_reply_entry`); returns its id.
    public func remember(_ node: Node) -> UInt64 {
        let fixed = fixedID(node)
        return state.withLock { s in
            let id = fixed ?? Self.assign(node, &s)
            s.entries[id, default: Entry(node: node, lookups: 0)].lookups += 1
            return id
        }
    }

    /// The id `node` has if the kernel knows it (for readdir's d_ino; creates nothing).
    public func existingID(_ node: Node) -> UInt64? {
        if let fixed = fixedID(node) { return fixed }
        return state.withLock { $0.syntheticIDs[node] }
    }

    /// The node with id `id`, if the kernel holds a reference to it (or it is a fixed one).
    public func node(_ id: UInt64) -> Node? {
        switch id {
        case NodeID.root: return .present(NodeID.root)
        case NodeID.timeRoot: return .timeRoot
        case NodeID.blockRoot: return .blockRoot
        case NodeID.historyRoot: return .historyRoot
        case NodeID.similarRoot: return .similarRoot
        default: return state.withLock { $0.entries[id]?.node }
        }
    }

    /// The kernel dropped `count` references to `id` (`forget`, `forget_multi`).
    public func forget(_ id: UInt64, count: UInt64) {
        state.withLock { s in
            guard var entry = s.entries[id] else { return }
            entry.lookups = entry.lookups > count ? entry.lookups - count : 0
            if entry.lookups == 0 {
                s.entries[id] = nil
                if NodeID.isSynthetic(id) { remember(forgotten: entry.node, &s) }
            } else {
                s.entries[id] = entry
            }
        }
    }

    /// Queues a node the kernel no longer holds; the oldest ones beyond `forgottenLimit` lose their
    /// id unless the kernel holds them again.
    private func remember(forgotten node: Node, _ s: inout State) {
        s.forgotten.append(node)
        while s.forgotten.count - s.forgottenStart > forgottenLimit {
            let oldest = s.forgotten[s.forgottenStart]
            s.forgottenStart += 1
            if let id = s.syntheticIDs[oldest], s.entries[id] == nil { s.syntheticIDs[oldest] = nil }
        }
        if s.forgottenStart > 1024 && s.forgottenStart * 2 > s.forgotten.count {
            s.forgotten.removeFirst(s.forgottenStart)
            s.forgottenStart = 0
        }
    }

    /// How many synthetic nodes have an id now: live ones and recently forgotten ones (tests and
    /// diagnostics).
    public var syntheticIDCount: Int { state.withLock { $0.syntheticIDs.count } }

    /// How many references the kernel holds to `id` (tests and diagnostics).
    public func lookupCount(_ id: UInt64) -> UInt64 { state.withLock { $0.entries[id]?.lookups ?? 0 } }

    /// Live entries (tests and diagnostics).
    public var liveCount: Int { state.withLock { $0.entries.count } }
}
