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

/// The time-travel index over the log. "The tree at sequence S" is answered without replaying
/// the log, from memory read front to back. Built once when the store opens, extended by every
/// append.
///
/// **Paths.** Every path that ever existed is a node with the sorted list of its changes
/// (sequence number, version, where the change is in its directory's log): *stat at S* is a
/// dictionary lookup and a search of that list (`countNotAbove`).
///
/// **Directories.** The changes of a directory's children are also kept, in order, in one log
/// per directory, each with the child's attributes inline (a `Packed` version, 32 bytes: the
/// logs are where versions live). When the changes since its last snapshot reach that
/// snapshot's size (at least `snapshotMinimum`), a directory takes a snapshot: its live
/// children at that point, sorted by name, attributes inline, written into the log where it
/// stands. *list at S* finds the last snapshot at or before S, copies it, and replays over the
/// copy the changes that follow it in the log, up to S: one stretch of memory, read in order.
/// Every change already knows where its child stands in that snapshot (or, for a child not in
/// it, where its name sorts among the snapshot's), so the replay searches nothing and no name
/// is compared. A listing costs time in proportion to the directory's size (a snapshot and at
/// most as many changes again), whatever the length of history.
///
/// **Memory** per event: the change in the directory's log (32 bytes), the path record (16),
/// the event's line offset and time (16), and the snapshots: about one entry (32 bytes) per
/// change once a directory has stopped growing. A version moved by a rename costs 8 bytes
/// more; a directory rename adds a record and a change per live descendant. The logs grow by
/// chunks allocated once at their full size: no large buffer is ever copied or freed.
///
/// Not thread-safe: the Store owns it and serializes access with its lock.
struct StateIndex {
    /// One version of a node, as `plan` works with it.
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

    /// A version as the directory logs and snapshots store it, in 32 bytes. Owners are interned
    /// (`owners`), the content's event is stored as a distance back from the version's own
    /// (directories have none), and the size in 32 bits; a version that does not fit is kept
    /// whole in `extended` and flagged. A deletion is a `Packed` flagged `deleted`.
    struct Packed {
        var seq: UInt64
        var mtime: Int64
        /// seq - contentSeq (0 for directories); for an extended version, its index in `extended`.
        var contentBack: UInt32
        var size: UInt32
        /// Room used by `Directory`: in a change, where its child stands relative to the
        /// directory's snapshot (see `Directory.marks`); in a snapshot or a listing, the
        /// child's slot.
        var link: UInt32
        /// The owner's index in `owners` (bits 0-14); bit 15: `moved` (see `Directory.moved`).
        var owner: UInt16
        /// mode (bits 0-11), kind (bits 12-13), extended (bit 14), deleted (bit 15).
        var bits: UInt16

        static let extendedBit: UInt16 = 1 << 14
        static let deletedBit: UInt16 = 1 << 15
        static let movedBit: UInt16 = 1 << 15
        static let ownerMask: UInt16 = movedBit - 1

        /// A deletion recorded at `seq`.
        static func deletion(at seq: UInt64) -> Packed {
            Packed(seq: seq, mtime: 0, contentBack: 0, size: 0, link: 0, owner: 0, bits: deletedBit)
        }

        var isLive: Bool { bits & Self.deletedBit == 0 }
        var isMoved: Bool { owner & Self.movedBit != 0 }
        var kind: NodeKind { NodeKind(rawValue: UInt8(truncatingIfNeeded: (bits >> 12) & 3)) ?? .file }
    }

    /// `version == absent` records a deletion.
    struct PathRecord {
        var seq: UInt64
        var version: UInt32
        /// The index of this change in the log of the directory holding the node (`home`).
        var change: UInt32
    }

    static let absent = UInt32.max
    static let none = UInt32.max

    struct PathNode {
        let name: String
        let parent: UInt32
        /// The directory whose log holds this node's changes (its parent's; for the root, a
        /// directory of its own), and the node's slot in it.
        let home: UInt32
        let slot: UInt32
        /// The node's own children, once it has had any: an index into `directories`.
        var directory: UInt32 = StateIndex.none
        var records: [PathRecord] = []
        /// The sequence numbers of the first and last records and their count: a search of
        /// `records` starts without reading the array's header.
        var firstSeq: UInt64 = 0
        var lastSeq: UInt64 = 0
        var recordCount: UInt32 = 0
    }

    /// The state of a directory's children at a point of its log.
    struct Snapshot {
        /// The sequence number of the last change it includes (0 for the first, empty one).
        var lastSeq: UInt64
        /// Its entries, `log[start ..< start + count]`: the live children, sorted by name
        /// (`link` = slot). The changes after it follow them in the log.
        var start: UInt32
        var count: UInt32
        /// The index in `moved` of the first moved version after it.
        var movedStart: UInt32
        /// The children that changed after it and are not in it: `added[addedStart...]`, up to
        /// the next snapshot's `addedStart`, in the order of their first change.
        var addedStart: UInt32
    }

    /// A child changed after a snapshot that it is not in.
    struct Added {
        var slot: UInt32
        /// How many of the snapshot's entries sort before its name.
        var before: UInt32
        /// Its place in name order among all the children added after the same snapshot; set
        /// when the next snapshot is taken.
        var rank: UInt32
    }

    /// The children of one directory (every name ever created in it) and the log of their
    /// changes, with snapshots.
    struct Directory {
        /// By slot (the order names were first created in): name and node id.
        var names: [String] = []
        var nodes: [UInt32] = []
        /// By slot: `(snapshot number << 32) | code`, where the code is what the child's changes
        /// after that snapshot record in `link`: `inSnapshot | position` for a child in the
        /// snapshot, else its ordinal in the snapshot's `added`. A mark for an older snapshot
        /// means the child has not changed since the latest one, and is not in it.
        var marks: [UInt64] = []
        /// Each snapshot's entries, then the changes after it, then the next snapshot's...: a
        /// listing reads one stretch of it, front to back. A change's `seq` is the sequence
        /// number it was recorded at: its version's own for a new version, the deletion's for
        /// a deletion. A version moved here by a rename keeps its own `seq`, and is flagged
        /// `moved`: the sequence number of its change is in `moved`.
        var log = Chunked<Packed>()
        /// For each moved version in the log, in order: the sequence number of its change.
        var moved: [UInt64] = []
        /// The sequence number of the last change, and the latest snapshot's `lastSeq`.
        var lastSeq: UInt64 = 0
        var latestSnapshotSeq: UInt64 = 0
        var snapshots: [Snapshot] = [Snapshot(lastSeq: 0, start: 0, count: 0, movedStart: 0, addedStart: 0)]
        var added: [Added] = []
        /// Live children at the head.
        var live = 0

        /// Calls `body` with each entry of snapshot `index`, in order.
        @inline(__always)
        func entries(of index: Int, _ body: (UnsafeBufferPointer<Packed>) -> Void) {
            let snapshot = snapshots[index]
            log.forEachRun(in: Int(snapshot.start) ..< Int(snapshot.start + snapshot.count), body)
        }

        /// Calls `body` with the changes after snapshot `index`, in order, while their sequence
        /// numbers are <= seq.
        @inline(__always)
        func replay(after index: Int, through seq: UInt64, _ body: (Packed) -> Void) {
            let snapshot = snapshots[index]
            let end = index + 1 < snapshots.count ? Int(snapshots[index + 1].start) : log.count
            var m = Int(snapshot.movedStart)
            moved.withUnsafeBufferPointer { moved in
                var stop = false
                log.forEachRun(in: Int(snapshot.start + snapshot.count) ..< end) { changes in
                    guard !stop else { return }
                    for change in changes {
                        var recorded = change.seq
                        if change.isMoved {
                            recorded = moved[m]
                            m += 1
                        }
                        if recorded > seq {
                            stop = true
                            return
                        }
                        body(change)
                    }
                }
            }
        }
    }

    static let inSnapshot: UInt32 = 1 << 31
    static let neverMarked = UInt64.max

    /// A directory takes a snapshot when its changes since the last one reach
    /// max(snapshotMinimum, snapshotSpacing x that snapshot's size).
    let snapshotMinimum: Int
    static let snapshotSpacing = 1

    private(set) var nodes: [PathNode] = [PathNode(name: "", parent: 0, home: 0, slot: 0)]
    private(set) var ids: [String: UInt32] = ["/": 0]
    /// directories[0] holds the root's own changes (slot 0).
    private(set) var directories: [Directory] = [Directory(names: [""], nodes: [0], marks: [StateIndex.neverMarked])]
    /// Every (uid << 32 | gid) a version has, by `Packed.owner`.
    private(set) var owners: [UInt64] = []
    private var ownerIndex: [UInt64: UInt16] = [:]
    /// Versions too large for `Packed`.
    private(set) var extended: [Version] = []
    /// How many versions exist (the next version index).
    private(set) var versionCount: UInt32 = 0
    /// Byte offset of each event's line in events.jsonl, indexed by sequence number.
    private(set) var offsets: [UInt64] = []
    /// Each event's time in nanoseconds, indexed by sequence number (never decreasing).
    private(set) var times: [Int64] = []
    /// Every `timeStride`-th entry of `times`: a search reads a few cache lines of `times`.
    private(set) var timeSamples: [Int64] = []
    static let timeStride = 16

    init(snapshotMinimum: Int = 32) {
        self.snapshotMinimum = max(1, snapshotMinimum)
    }

    /// The sequence number of the last event applied (nil before genesis).
    var head: UInt64? { offsets.isEmpty ? nil : UInt64(offsets.count - 1) }

    // MARK: Versions

    /// The attributes of a stored (live) version.
    @inline(__always)
    func info(_ p: Packed) -> NodeInfo {
        if p.bits & Packed.extendedBit != 0 {
            let v = extended[Int(p.contentBack)]
            return NodeInfo(
                kind: v.kind, mode: UInt32(v.mode), uid: v.uid, gid: v.gid, size: v.size, mtime: Timestamp(nanoseconds: v.mtime),
                version: v.seq, contentSeq: v.contentSeq)
        }
        let owner = owners[Int(p.owner & Packed.ownerMask)]
        let kind = p.kind
        return NodeInfo(
            kind: kind, mode: UInt32(p.bits & 0o7777), uid: UInt32(truncatingIfNeeded: owner >> 32),
            gid: UInt32(truncatingIfNeeded: owner), size: UInt64(p.size), mtime: Timestamp(nanoseconds: p.mtime), version: p.seq,
            contentSeq: kind == .directory ? 0 : p.seq &- UInt64(p.contentBack))
    }

    /// A stored (live) version, whole.
    private func unpack(_ p: Packed) -> Version {
        if p.bits & Packed.extendedBit != 0 { return extended[Int(p.contentBack)] }
        let i = info(p)
        return Version(
            seq: i.version, contentSeq: i.contentSeq, size: i.size, mtime: i.mtime.nanoseconds, uid: i.uid, gid: i.gid,
            mode: UInt16(i.mode), kind: i.kind)
    }

    private mutating func pack(_ v: Version) -> Packed {
        let bits = (v.mode & 0o7777) | UInt16(v.kind.rawValue) << 12
        let key = UInt64(v.uid) << 32 | UInt64(v.gid)
        var owner = ownerIndex[key]
        if owner == nil, owners.count <= Int(Packed.ownerMask) {
            owner = UInt16(owners.count)
            owners.append(key)
            ownerIndex[key] = owner
        }
        let back: UInt64? = v.kind == .directory ? (v.contentSeq == 0 ? 0 : nil) : (v.contentSeq <= v.seq ? v.seq - v.contentSeq : nil)
        if let owner, let back, back <= UInt64(UInt32.max), v.size <= UInt64(UInt32.max), v.mode <= 0o7777 {
            return Packed(seq: v.seq, mtime: v.mtime, contentBack: UInt32(back), size: UInt32(v.size), link: 0, owner: owner, bits: bits)
        }
        precondition(extended.count < Int(UInt32.max), "too many extended versions")
        extended.append(v)
        return Packed(
            seq: v.seq, mtime: v.mtime, contentBack: UInt32(extended.count - 1), size: 0, link: 0, owner: 0,
            bits: bits | Packed.extendedBit)
    }

    // MARK: Queries

    /// How many of `count` non-decreasing values (read by `value`) are <= key. A first guess by
    /// interpolation between the two ends, then a gallop outward from it and a binary search:
    /// evenly spread values (sequence numbers of changes, event times) cost a few reads in
    /// neighbouring cache lines, where a binary search reads one line per step; any input
    /// costs at most about 2 log2(count) reads.
    /// `first` and `last`, when given, must be value(0) and value(count - 1).
    @inline(__always)
    static func countNotAbove<T: BinaryInteger>(
        _ key: T, count n: Int, first knownFirst: T? = nil, last knownLast: T? = nil, _ value: (Int) -> T
    ) -> Int {
        guard n > 0 else { return 0 }
        let first = knownFirst ?? value(0)
        if key < first { return 0 }
        let last = knownLast ?? value(n - 1)
        if key >= last { return n }
        // value(0) <= key < value(n - 1): find lo < hi = lo + 1 with value(lo) <= key < value(hi).
        let fraction = (Double(key) - Double(first)) / (Double(last) - Double(first))
        let guess = min(max(Int(Double(n - 1) * fraction), 0), n - 2)
        var lo: Int, hi: Int
        if value(guess) <= key {
            lo = guess
            hi = guess + 1
            var step = 1
            while hi < n - 1 && value(hi) <= key {
                lo = hi
                step &*= 2
                hi = min(n - 1, lo + step)
            }
        } else {
            hi = guess
            lo = guess - 1
            var step = 1
            while lo > 0 && value(lo) > key {
                hi = lo
                step &*= 2
                lo = max(0, hi - step)
            }
        }
        while hi - lo > 1 {
            let mid = (lo + hi) / 2
            if value(mid) <= key { lo = mid } else { hi = mid }
        }
        return hi
    }

    /// The record of a node in force at `seq` (nil if none yet).
    private func record(node id: UInt32, at seq: UInt64) -> PathRecord? {
        let count = Int(nodes[Int(id)].recordCount)
        guard count > 0 else { return nil }
        let first = nodes[Int(id)].firstSeq, last = nodes[Int(id)].lastSeq
        return nodes[Int(id)].records.withUnsafeBufferPointer { buffer in
            // Only the elements the search reads are touched (count is known).
            let records = buffer.baseAddress.unsafelyUnwrapped
            let n = Self.countNotAbove(seq, count: count, first: first, last: last) { records[$0].seq }
            return n > 0 ? records[n - 1] : nil
        }
    }

    /// The stored version a record points to.
    private func stored(_ record: PathRecord, of node: UInt32) -> Packed {
        directories[Int(nodes[Int(node)].home)].log.element(Int(record.change))
    }

    /// The version index a node has at `seq`, or nil if it did not exist then.
    func versionIndex(node: UInt32, at seq: UInt64) -> UInt32? {
        guard let r = record(node: node, at: seq), r.version != Self.absent else { return nil }
        return r.version
    }

    /// The stored version a node has at `seq`, or nil if it did not exist then.
    private func stored(node: UInt32, at seq: UInt64) -> Packed? {
        guard let r = record(node: node, at: seq), r.version != Self.absent else { return nil }
        return stored(r, of: node)
    }

    func lookup(_ path: String, at seq: UInt64) -> NodeInfo? {
        guard let id = ids[path], let p = stored(node: id, at: seq) else { return nil }
        return info(p)
    }

    /// The entries of directory `path` at `seq`, sorted by name; nil if it is not a directory then.
    func list(_ path: String, at seq: UInt64) -> [(name: String, info: NodeInfo)]? {
        guard let id = ids[path], let p = stored(node: id, at: seq), p.kind == .directory else { return nil }
        let d = nodes[Int(id)].directory
        guard d != Self.none else { return [] }
        let directory = directories[Int(d)]
        let snapshot = Self.snapshot(of: directory, at: seq)
        var out: [(name: String, info: NodeInfo)] = []
        out.reserveCapacity(Int(directory.snapshots[snapshot].count) + 8)
        directory.names.withUnsafeBufferPointer { names in
            Self.children(of: directory, snapshot: snapshot, through: seq) { entry in
                out.append((names[Int(entry.link)], info(entry)))
            }
        }
        return out
    }

    /// Every change of one path: (sequence number, the version it became, or nil for a deletion).
    func history(_ path: String) -> [(seq: UInt64, info: NodeInfo?)] {
        guard let id = ids[path] else { return [] }
        let changes = directories[Int(nodes[Int(id)].home)].log
        return nodes[Int(id)].records.map { ($0.seq, $0.version == Self.absent ? nil : info(changes[Int($0.change)])) }
    }

    /// Every path that ever existed, in no particular order.
    var allPaths: Dictionary<String, UInt32>.Keys { ids.keys }

    /// The last event with time <= t, or nil if t is before the genesis event.
    func sequence(atOrBefore t: Timestamp) -> UInt64? {
        let t = t.nanoseconds
        // The first sample after t bounds the answer: it lies in the stride before that sample.
        let low = timeSamples.withUnsafeBufferPointer { samples in
            Self.countNotAbove(t, count: samples.count) { samples[$0] }
        }
        guard low > 0 else { return nil }
        var first = (low - 1) * Self.timeStride
        var last = min(low * Self.timeStride, times.count)
        times.withUnsafeBufferPointer { times in
            while first < last {
                let mid = (first + last) / 2
                if times[mid] <= t { first = mid + 1 } else { last = mid }
            }
        }
        return UInt64(first - 1)
    }

    func time(of seq: UInt64) -> Timestamp { Timestamp(nanoseconds: times[Int(seq)]) }
    func offset(of seq: UInt64) -> UInt64 { offsets[Int(seq)] }

    // MARK: Directory logs

    /// The last snapshot of a directory whose changes all have sequence numbers <= seq.
    private static func snapshot(of directory: Directory, at seq: UInt64) -> Int {
        directory.snapshots.withUnsafeBufferPointer { snapshots in
            // The first (empty) snapshot fits any seq.
            max(Self.countNotAbove(seq, count: snapshots.count, last: directory.latestSnapshotSeq) { snapshots[$0].lastSeq }, 1) - 1
        }
    }

    /// Calls `emit`, in name order, with each live child of a directory after its changes up to
    /// `seq` (with `link` set to the child's slot), given the last snapshot before them: the
    /// snapshot with the changes after it replayed. Reads the snapshot and those changes front
    /// to back (and `added`, for the children not in the snapshot).
    @inline(__always)
    private static func children(of directory: Directory, snapshot index: Int, through seq: UInt64, _ emit: (Packed) -> Void) {
        let snapshot = directory.snapshots[index]
        let count = Int(snapshot.count)
        var work: [Packed] = []
        work.reserveCapacity(count)
        directory.entries(of: index) { work.append(contentsOf: $0) }
        let addedStart = Int(snapshot.addedStart)
        // The children not in the snapshot, by ordinal (link = slot).
        var extra: [Packed] = []
        var extraLive = 0
        directory.added.withUnsafeBufferPointer { added in
            work.withUnsafeMutableBufferPointer { work in
                directory.replay(after: index, through: seq) { change in
                    var change = change
                    let code = change.link
                    if code & inSnapshot != 0 {
                        let p = Int(code & ~inSnapshot)
                        change.link = work[p].link
                        work[p] = change
                    } else {
                        let o = Int(code)
                        change.link = added[addedStart + o].slot
                        if o == extra.count {
                            extra.append(change)
                            if change.isLive { extraLive += 1 }
                        } else {
                            extraLive += (change.isLive ? 1 : 0) - (extra[o].isLive ? 1 : 0)
                            extra[o] = change
                        }
                    }
                }
            }
        }
        if extraLive == 0 {
            work.withUnsafeBufferPointer { work in
                for entry in work where entry.isLive { emit(entry) }
            }
            return
        }
        // The live children not in the snapshot, in name order: by rank once the next snapshot
        // has ranked them, else by comparing names.
        var order: [Int] = []
        order.reserveCapacity(extraLive)
        if index + 1 < directory.snapshots.count {
            let total = Int(directory.snapshots[index + 1].addedStart) - addedStart
            var byRank = [Int32](repeating: -1, count: total)
            for o in extra.indices where extra[o].isLive {
                byRank[Int(directory.added[addedStart + o].rank)] = Int32(o)
            }
            for o in byRank where o >= 0 { order.append(Int(o)) }
        } else {
            for o in extra.indices where extra[o].isLive { order.append(o) }
            let names = directory.names
            order.sort { names[Int(extra[$0].link)].utf8.lexicographicallyPrecedes(names[Int(extra[$1].link)].utf8) }
        }
        // Merge: a child not in the snapshot goes before the entries its name sorts before.
        work.withUnsafeBufferPointer { work in
            var p = 0
            for o in order {
                let before = Int(directory.added[addedStart + o].before)
                while p < before {
                    if work[p].isLive { emit(work[p]) }
                    p += 1
                }
                emit(extra[o])
            }
            while p < count {
                if work[p].isLive { emit(work[p]) }
                p += 1
            }
        }
    }

    /// Appends one change of node `id` (nil `data`: a deletion) to its directory's log and to
    /// its own records.
    private mutating func record(_ id: UInt32, seq: UInt64, version: UInt32, data: Version?) {
        let home = Int(nodes[Int(id)].home), slot = Int(nodes[Int(id)].slot)
        let wasLive = nodes[Int(id)].records.last.map { $0.version != Self.absent } ?? false
        let latest = directories[home].snapshots.count - 1
        let mark = directories[home].marks[slot]
        let code: UInt32
        if mark >> 32 == UInt64(latest) {
            code = UInt32(truncatingIfNeeded: mark)
        } else {
            // Not in the latest snapshot, and no change since: a child added after it.
            code = UInt32(directories[home].added.count) - directories[home].snapshots[latest].addedStart
            let before = insertionPoint(of: slot, in: directories[home], snapshot: latest)
            directories[home].added.append(Added(slot: UInt32(slot), before: before, rank: 0))
            directories[home].marks[slot] = UInt64(latest) << 32 | UInt64(code)
        }
        var change = data.map { pack($0) } ?? .deletion(at: seq)
        change.link = code
        let index = UInt32(directories[home].log.count)
        if change.seq != seq {
            change.owner |= Packed.movedBit
            directories[home].moved.append(seq)
        }
        directories[home].log.append(change)
        directories[home].lastSeq = seq
        nodes[Int(id)].records.append(PathRecord(seq: seq, version: version, change: index))
        if nodes[Int(id)].recordCount == 0 { nodes[Int(id)].firstSeq = seq }
        nodes[Int(id)].lastSeq = seq
        nodes[Int(id)].recordCount += 1
        directories[home].live += (data != nil ? 1 : 0) - (wasLive ? 1 : 0)

        let latestSnapshot = directories[home].snapshots[latest]
        let since = directories[home].log.count - Int(latestSnapshot.start + latestSnapshot.count)
        let size = Int(latestSnapshot.count)
        if since >= max(snapshotMinimum, Self.snapshotSpacing * size) { takeSnapshot(home) }
    }

    /// How many entries of a snapshot sort before the name in `slot` (which is not among them).
    private func insertionPoint(of slot: Int, in directory: Directory, snapshot: Int) -> UInt32 {
        let name = directory.names[slot].utf8
        let start = Int(directory.snapshots[snapshot].start)
        var low = 0, high = Int(directory.snapshots[snapshot].count)
        while low < high {
            let mid = (low + high) / 2
            if directory.names[Int(directory.log[start + mid].link)].utf8.lexicographicallyPrecedes(name) {
                low = mid + 1
            } else {
                high = mid
            }
        }
        return UInt32(low)
    }

    /// Ranks by name the children added after a directory's latest snapshot, then takes a new
    /// snapshot of its children at the head.
    private mutating func takeSnapshot(_ d: Int) {
        let latest = directories[d].snapshots.count - 1
        var entries: [Packed] = []
        entries.reserveCapacity(directories[d].live)
        Self.children(of: directories[d], snapshot: latest, through: .max) { entries.append($0) }
        let addedStart = Int(directories[d].snapshots[latest].addedStart)
        let addedEnd = directories[d].added.count
        if addedEnd > addedStart {
            let order: [Int] = {
                let names = directories[d].names
                let added = directories[d].added
                return (addedStart ..< addedEnd).sorted {
                    names[Int(added[$0].slot)].utf8.lexicographicallyPrecedes(names[Int(added[$1].slot)].utf8)
                }
            }()
            for (rank, i) in order.enumerated() { directories[d].added[i].rank = UInt32(rank) }
        }
        let next = UInt64(latest + 1)
        for (position, entry) in entries.enumerated() {
            directories[d].marks[Int(entry.link)] = next << 32 | UInt64(Self.inSnapshot | UInt32(position))
        }
        let snapshot = Snapshot(
            lastSeq: directories[d].lastSeq, start: UInt32(directories[d].log.count), count: UInt32(entries.count),
            movedStart: UInt32(directories[d].moved.count), addedStart: UInt32(addedEnd))
        for entry in entries { directories[d].log.append(entry) }
        directories[d].snapshots.append(snapshot)
        directories[d].latestSnapshotSeq = snapshot.lastSeq
    }

    // MARK: Planning and applying changes

    /// What one event does to the index, computed without changing anything.
    struct Plan {
        enum Target { case new(Int), existing(UInt32, Version), absent }
        var newVersions: [Version] = []
        var records: [(path: String, target: Target)] = []
    }

    /// A node's version at the head (nil if it does not exist now).
    private func headVersion(of id: UInt32) -> (version: UInt32, info: Version)? {
        guard let last = nodes[Int(id)].records.last, last.version != Self.absent else { return nil }
        return (last.version, unpack(stored(last, of: id)))
    }

    private func current(_ path: String) -> (id: UInt32, version: UInt32, info: Version)? {
        guard let id = ids[path], let head = headVersion(of: id) else { return nil }
        return (id, head.version, head.info)
    }

    /// The live paths below a directory at the head, depth first, parents before children.
    private func liveDescendants(of id: UInt32, path: String) -> [(path: String, version: UInt32, info: Version)] {
        let d = nodes[Int(id)].directory
        guard d != Self.none else { return [] }
        var out: [(String, UInt32, Version)] = []
        for child in directories[Int(d)].nodes {
            guard let head = headVersion(of: child) else { continue }
            let childPath = StorePath.join(path, nodes[Int(child)].name)
            out.append((childPath, head.version, head.info))
            if head.info.kind == .directory {
                out.append(contentsOf: liveDescendants(of: child, path: childPath))
            }
        }
        return out
    }

    private func hasLiveChildren(_ id: UInt32) -> Bool {
        let d = nodes[Int(id)].directory
        return d != Self.none && directories[Int(d)].live > 0
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
            plan.records.append((destination, .existing(source.version, source.info)))
            if source.info.kind == .directory {
                for (descendant, version, info) in liveDescendants(of: source.id, path: path) {
                    let suffix = descendant.dropFirst(path.count)
                    plan.records.append((descendant, .absent))
                    plan.records.append((destination + suffix, .existing(version, info)))
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
        let base = versionCount
        versionCount += UInt32(plan.newVersions.count)
        for (path, target) in plan.records {
            let version: UInt32
            let data: Version?
            switch target {
            case .new(let i):
                version = base + UInt32(i)
                data = plan.newVersions[i]
            case .existing(let v, let info):
                version = v
                data = info
            case .absent:
                version = Self.absent
                data = nil
            }
            record(node(for: path), seq: seq, version: version, data: data)
        }
        if times.count % Self.timeStride == 0 { timeSamples.append(time.nanoseconds) }
        offsets.append(offset)
        times.append(time.nanoseconds)
    }

    /// The node id for a path, created (with its slot in the parent's directory) if new.
    private mutating func node(for path: String) -> UInt32 {
        if let id = ids[path] { return id }
        let parentID = node(for: StorePath.parent(of: path))
        var d = nodes[Int(parentID)].directory
        if d == Self.none {
            d = UInt32(directories.count)
            directories.append(Directory())
            nodes[Int(parentID)].directory = d
        }
        let name = StorePath.name(of: path)
        let id = UInt32(nodes.count)
        let slot = UInt32(directories[Int(d)].nodes.count)
        directories[Int(d)].names.append(name)
        directories[Int(d)].nodes.append(id)
        directories[Int(d)].marks.append(Self.neverMarked)
        nodes.append(PathNode(name: name, parent: parentID, home: d, slot: slot))
        ids[path] = id
        return id
    }

    mutating func reserve(events: Int) {
        offsets.reserveCapacity(events)
        times.reserveCapacity(events)
        timeSamples.reserveCapacity(events / Self.timeStride + 1)
    }

    // MARK: Storage

    /// An append-only array kept in chunks of 1,024 elements. Each chunk after the first is
    /// allocated once at its full size, so a growing log never copies or frees a large buffer:
    /// no slack beyond the last chunk, and no holes left in the heap.
    struct Chunked<Element> {
        static var shift: Int { 10 }
        static var chunkSize: Int { 1 << shift }
        private(set) var chunks: [[Element]] = []
        private(set) var count = 0

        subscript(i: Int) -> Element { chunks[i >> Self.shift][i & (Self.chunkSize - 1)] }

        var last: Element? { count == 0 ? nil : self[count - 1] }

        /// Element `i` (< count), read without touching its chunk's header.
        @inline(__always)
        func element(_ i: Int) -> Element {
            precondition(i >= 0 && i < count, "index out of range")
            return chunks[i >> Self.shift].withUnsafeBufferPointer { $0.baseAddress.unsafelyUnwrapped[i & (Self.chunkSize - 1)] }
        }

        mutating func append(_ element: Element) {
            if count & (Self.chunkSize - 1) == 0 {
                var chunk: [Element] = []
                if count > 0 { chunk.reserveCapacity(Self.chunkSize) }
                chunks.append(chunk)
            }
            chunks[chunks.count - 1].append(element)
            count += 1
        }

        /// Calls `body` with the elements in `range`, in order, a chunk's run at a time.
        @inline(__always)
        func forEachRun(in range: Range<Int>, _ body: (UnsafeBufferPointer<Element>) -> Void) {
            var i = range.lowerBound
            while i < range.upperBound {
                let offset = i & (Self.chunkSize - 1)
                let n = min(Self.chunkSize - offset, range.upperBound - i)
                chunks[i >> Self.shift].withUnsafeBufferPointer { chunk in
                    body(UnsafeBufferPointer(rebasing: chunk[offset ..< offset + n]))
                }
                i += n
            }
        }
    }
}
