/// What kind of node a path names.
public enum NodeKind: UInt8, Sendable {
    case file, directory, symlink
}

/// One version of one node: what `stat` shows for it in any view.
public struct NodeInfo: Hashable, Sendable {
    public var kind: NodeKind
    /// Permission bits (07777).
    public var mode: UInt32
    public var uid: UInt32
    public var gid: UInt32
    /// Content length for files; target length for symlinks; 0 for directories.
    public var size: UInt64
    public var mtime: Timestamp
    /// The sequence number of the event that produced this version: its stable identity. Views
    /// showing the same version (at different times, or after a rename) share it; a different
    /// version never does.
    public var version: UInt64
    /// The event whose line holds the content (files) or the target (symlinks); 0 for directories.
    public var contentSeq: UInt64
}

/// The time-travel index over the log: for every path that ever existed, the sorted list of
/// (sequence number, version) changes. "The tree at sequence S" is then a binary search per path,
/// with no replay. Built once when the store opens, extended by every append.
///
/// Memory: per event about one version (48 bytes) and one path record (16 bytes), plus the event's
/// line offset and time (16 bytes). A directory rename adds one record per live descendant.
///
/// Not thread-safe: the Store owns it and serializes access with its lock.
struct StateIndex {
    struct Version {
        var seq: UInt64
        var contentSeq: UInt64
        var size: UInt64
        var mtime: Int64
        var uid: UInt32
        var gid: UInt32
        var mode: UInt16
        var kind: NodeKind
    }

    /// `version == absent` records a deletion.
    struct PathRecord {
        var seq: UInt64
        var version: UInt32
    }

    static let absent = UInt32.max

    struct PathNode {
        let name: String
        let parent: UInt32
        var records: [PathRecord] = []
        /// Every name that was ever created in this directory (live or not), as node ids.
        var children: [UInt32] = []
    }

    private(set) var nodes: [PathNode] = [PathNode(name: "", parent: 0)]
    private(set) var ids: [String: UInt32] = ["/": 0]
    private(set) var versions: [Version] = []
    /// Byte offset of each event's line in events.jsonl, indexed by sequence number.
    private(set) var offsets: [UInt64] = []
    /// Each event's time in nanoseconds, indexed by sequence number (never decreasing).
    private(set) var times: [Int64] = []

    /// The sequence number of the last event applied (nil before genesis).
    var head: UInt64? { offsets.isEmpty ? nil : UInt64(offsets.count - 1) }

    // MARK: Queries

    func info(_ index: UInt32) -> NodeInfo {
        let v = versions[Int(index)]
        return NodeInfo(
            kind: v.kind, mode: UInt32(v.mode), uid: v.uid, gid: v.gid, size: v.size,
            mtime: Timestamp(nanoseconds: v.mtime), version: v.seq, contentSeq: v.contentSeq)
    }

    /// The version index a node has at `seq`, or nil if it did not exist then.
    func versionIndex(node: UInt32, at seq: UInt64) -> UInt32? {
        let records = nodes[Int(node)].records
        // Last record with record.seq <= seq.
        var low = 0, high = records.count
        while low < high {
            let mid = (low + high) / 2
            if records[mid].seq <= seq { low = mid + 1 } else { high = mid }
        }
        guard low > 0 else { return nil }
        let v = records[low - 1].version
        return v == Self.absent ? nil : v
    }

    func lookup(_ path: String, at seq: UInt64) -> NodeInfo? {
        guard let id = ids[path], let v = versionIndex(node: id, at: seq) else { return nil }
        return info(v)
    }

    /// The entries of directory `path` at `seq`, sorted by name; nil if it is not a directory then.
    func list(_ path: String, at seq: UInt64) -> [(name: String, info: NodeInfo)]? {
        guard let id = ids[path], let v = versionIndex(node: id, at: seq), versions[Int(v)].kind == .directory
        else { return nil }
        var out: [(name: String, info: NodeInfo)] = []
        for child in nodes[Int(id)].children {
            if let cv = versionIndex(node: child, at: seq) { out.append((nodes[Int(child)].name, info(cv))) }
        }
        out.sort { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }
        return out
    }

    /// Every change of one path: (sequence number, the version it became, or nil for a deletion).
    func history(_ path: String) -> [(seq: UInt64, info: NodeInfo?)] {
        guard let id = ids[path] else { return [] }
        return nodes[Int(id)].records.map { ($0.seq, $0.version == Self.absent ? nil : info($0.version)) }
    }

    /// Every path that ever existed, in no particular order.
    var allPaths: Dictionary<String, UInt32>.Keys { ids.keys }

    /// The last event with time <= t, or nil if t is before the genesis event.
    func sequence(atOrBefore t: Timestamp) -> UInt64? {
        var low = 0, high = times.count
        while low < high {
            let mid = (low + high) / 2
            if times[mid] <= t.nanoseconds { low = mid + 1 } else { high = mid }
        }
        return low == 0 ? nil : UInt64(low - 1)
    }

    func time(of seq: UInt64) -> Timestamp { Timestamp(nanoseconds: times[Int(seq)]) }
    func offset(of seq: UInt64) -> UInt64 { offsets[Int(seq)] }

    // MARK: Planning and applying changes

    /// What one event does to the index, computed without changing anything.
    struct Plan {
        enum Target { case new(Int), existing(UInt32), absent }
        var newVersions: [Version] = []
        var records: [(path: String, target: Target)] = []
    }

    private func current(_ path: String) -> (id: UInt32, version: UInt32, info: Version)? {
        guard let id = ids[path], let last = nodes[Int(id)].records.last, last.version != Self.absent else { return nil }
        return (id, last.version, versions[Int(last.version)])
    }

    /// The live paths below a directory at the head, depth first, parents before children.
    private func liveDescendants(of id: UInt32, path: String) -> [(path: String, version: UInt32)] {
        var out: [(String, UInt32)] = []
        for child in nodes[Int(id)].children {
            guard let last = nodes[Int(child)].records.last, last.version != Self.absent else { continue }
            let childPath = StorePath.join(path, nodes[Int(child)].name)
            out.append((childPath, last.version))
            if versions[Int(last.version)].kind == .directory {
                out.append(contentsOf: liveDescendants(of: child, path: childPath))
            }
        }
        return out
    }

    private func hasLiveChildren(_ id: UInt32) -> Bool {
        nodes[Int(id)].children.contains { child in
            guard let last = nodes[Int(child)].records.last else { return false }
            return last.version != Self.absent
        }
    }

    private func requireParentDirectory(_ path: String) throws(LayerError) {
        let parent = StorePath.parent(of: path)
        guard let p = current(parent) else {
            throw LayerError(.notFound, "parent directory \(parent) does not exist", path: path)
        }
        guard p.info.kind == .directory else {
            throw LayerError(.notDirectory, "parent \(parent) is not a directory", path: path)
        }
    }

    private func requireNewName(_ path: String) throws(LayerError) {
        guard StorePath.isCanonical(path), path != "/" else {
            throw LayerError(.invalidPath, "not a canonical store path", path: path)
        }
        if StorePath.isReserved(path) {
            throw LayerError(.reservedName, "names starting with '@' at the root are reserved for the mount's views", path: path)
        }
    }

    private func requireExisting(_ path: String) throws(LayerError) -> (id: UInt32, version: UInt32, info: Version) {
        guard StorePath.isCanonical(path) else { throw LayerError(.invalidPath, "not a canonical store path", path: path) }
        guard let c = current(path) else { throw LayerError(.notFound, "no such file or directory", path: path) }
        return c
    }

    /// Validates `event` against the state at the head and returns what applying it does.
    /// Throws the error a filesystem would give for the same change (ENOENT, EEXIST, ENOTDIR...).
    func plan(_ event: Event) throws(LayerError) -> Plan {
        var plan = Plan()
        let time = event.time.nanoseconds
        let by = event.provenance

        func fresh(_ base: Version?, kind: NodeKind, mode: UInt32, size: UInt64, contentSeq: UInt64) -> Version {
            Version(
                seq: event.seq, contentSeq: contentSeq, size: size, mtime: time, uid: base?.uid ?? by.uid,
                gid: base?.gid ?? by.gid, mode: UInt16(mode & 0o7777), kind: kind)
        }
        func set(_ path: String, _ version: Version) {
            plan.newVersions.append(version)
            plan.records.append((path, .new(plan.newVersions.count - 1)))
        }

        guard event.seq == UInt64(offsets.count) else {
            throw LayerError(.corrupt, "expected event \(offsets.count), found \(event.seq)", sequence: event.seq)
        }
        if event.operation == .genesis {
            guard event.seq == 0 else { throw LayerError(.corrupt, "genesis after event 0", sequence: event.seq) }
            set("/", fresh(nil, kind: .directory, mode: 0o755, size: 0, contentSeq: 0))
            return plan
        }
        guard event.seq > 0 else { throw LayerError(.corrupt, "event 0 must be the genesis event", sequence: 0) }
        guard let path = event.path else { throw LayerError(.corrupt, "event has no path", sequence: event.seq) }

        switch event.operation {
        case .genesis:
            break
        case .write, .truncate:
            let existing = current(path)
            if let existing {
                if existing.info.kind == .directory { throw LayerError(.isDirectory, "is a directory", path: path) }
                if existing.info.kind == .symlink { throw LayerError(.invalidArgument, "is a symbolic link", path: path) }
            } else {
                if event.operation == .truncate { throw LayerError(.notFound, "no such file", path: path) }
                try requireNewName(path)
                try requireParentDirectory(path)
            }
            set(path, fresh(existing?.info, kind: .file, mode: event.mode ?? 0o644, size: event.size ?? 0, contentSeq: event.seq))
        case .mkdir:
            try requireNewName(path)
            if current(path) != nil { throw LayerError(.alreadyExists, "already exists", path: path) }
            try requireParentDirectory(path)
            set(path, fresh(nil, kind: .directory, mode: event.mode ?? 0o755, size: 0, contentSeq: 0))
        case .symlink:
            try requireNewName(path)
            if current(path) != nil { throw LayerError(.alreadyExists, "already exists", path: path) }
            try requireParentDirectory(path)
            let target = event.target ?? ""
            guard !target.isEmpty, target.utf8.count <= StorePath.pathMax, !target.utf8.contains(0) else {
                throw LayerError(.invalidArgument, "a symlink target must be 1 to \(StorePath.pathMax) bytes without NUL", path: path)
            }
            set(path, fresh(nil, kind: .symlink, mode: 0o777, size: UInt64(target.utf8.count), contentSeq: event.seq))
        case .unlink:
            let existing = try requireExisting(path)
            if existing.info.kind == .directory { throw LayerError(.isDirectory, "is a directory (use rmdir)", path: path) }
            plan.records.append((path, .absent))
        case .rmdir:
            let existing = try requireExisting(path)
            if path == "/" { throw LayerError(.busy, "cannot remove the root", path: path) }
            if existing.info.kind != .directory { throw LayerError(.notDirectory, "not a directory", path: path) }
            if hasLiveChildren(existing.id) { throw LayerError(.directoryNotEmpty, "directory not empty", path: path) }
            plan.records.append((path, .absent))
        case .rename:
            let source = try requireExisting(path)
            guard let destination = event.destination else {
                throw LayerError(.corrupt, "rename without destination", sequence: event.seq)
            }
            if path == "/" { throw LayerError(.busy, "cannot rename the root", path: path) }
            try requireNewName(destination)
            if destination == path { throw LayerError(.invalidArgument, "rename onto itself", path: path) }
            if source.info.kind == .directory && StorePath.isSelfOrDescendant(destination, of: path) {
                throw LayerError(.invalidArgument, "cannot move a directory into itself", path: destination)
            }
            try requireParentDirectory(destination)
            if let target = current(destination) {
                if source.info.kind == .directory {
                    if target.info.kind != .directory {
                        throw LayerError(.notDirectory, "cannot replace a non-directory with a directory", path: destination)
                    }
                    if hasLiveChildren(target.id) {
                        throw LayerError(.directoryNotEmpty, "directory not empty", path: destination)
                    }
                } else if target.info.kind == .directory {
                    throw LayerError(.isDirectory, "cannot replace a directory with a non-directory", path: destination)
                }
            }
            plan.records.append((path, .absent))
            plan.records.append((destination, .existing(source.version)))
            if source.info.kind == .directory {
                for (descendant, version) in liveDescendants(of: source.id, path: path) {
                    let suffix = descendant.dropFirst(path.count)
                    plan.records.append((descendant, .absent))
                    plan.records.append((destination + suffix, .existing(version)))
                }
            }
        case .chmod:
            let existing = try requireExisting(path)
            if existing.info.kind == .symlink { throw LayerError(.unsupported, "symbolic links have no mode of their own", path: path) }
            var v = existing.info
            v.seq = event.seq
            v.mode = UInt16((event.mode ?? 0) & 0o7777)
            set(path, v)
        case .chown:
            let existing = try requireExisting(path)
            var v = existing.info
            v.seq = event.seq
            if let owner = event.owner { v.uid = owner }
            if let group = event.group { v.gid = group }
            set(path, v)
        case .utimens:
            let existing = try requireExisting(path)
            var v = existing.info
            v.seq = event.seq
            v.mtime = event.mtime?.nanoseconds ?? time
            set(path, v)
        }
        return plan
    }

    /// Applies a plan made by `plan(event)` for the event whose line starts at `offset`.
    mutating func apply(_ plan: Plan, seq: UInt64, time: Timestamp, offset: UInt64) {
        precondition(seq == UInt64(offsets.count), "events are applied in sequence order")
        let base = versions.count
        versions.append(contentsOf: plan.newVersions)
        for (path, target) in plan.records {
            let version: UInt32
            switch target {
            case .new(let i): version = UInt32(base + i)
            case .existing(let v): version = v
            case .absent: version = Self.absent
            }
            let id = node(for: path)
            nodes[Int(id)].records.append(PathRecord(seq: seq, version: version))
        }
        offsets.append(offset)
        times.append(time.nanoseconds)
    }

    /// The node id for a path, created (with its place in the parent's child list) if new.
    private mutating func node(for path: String) -> UInt32 {
        if let id = ids[path] { return id }
        let parentID = node(for: StorePath.parent(of: path))
        let id = UInt32(nodes.count)
        nodes.append(PathNode(name: StorePath.name(of: path), parent: parentID))
        nodes[Int(parentID)].children.append(id)
        ids[path] = id
        return id
    }

    mutating func reserve(events: Int) {
        offsets.reserveCapacity(events)
        times.reserveCapacity(events)
        versions.reserveCapacity(events)
    }
}
