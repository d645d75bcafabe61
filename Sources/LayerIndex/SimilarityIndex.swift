import Foundation
import LayerCore
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A failure of the similarity index, with a message for people.
public struct SimilarityError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable {
        /// Being built or rebuilt: try again later.
        case unavailable
        /// Another process maintains this index directory (the lock is held).
        case locked
        case invalidQuery
        case io
    }
    public var kind: Kind
    public var description: String
    public init(_ kind: Kind, _ description: String) {
        self.kind = kind
        self.description = description
    }
}

/// One version that matched a query.
public struct SimilarityMatch: Sendable, Hashable {
    /// The event that produced the version (its identity in the views).
    public var seq: UInt64
    public var path: String
    public var time: Timestamp
    /// Cosine similarity, -1...1 (1: the same direction).
    public var similarity: Float
}

/// The similarity index of one store: derived data kept OUTSIDE the store, in its own directory.
///
/// ```
/// <directory>/meta.json    format, store id, embedder id, dimension, last event indexed, count
/// <directory>/hnsw.bin     the HNSW graph (hnswlib), labels = event sequence numbers
/// <directory>/lock         flock: one process maintains the index (the mount, or reindex)
/// ```
///
/// - Fed from the log: every `write` and `truncate` event's version (path + content,
///   `IndexedText`) is embedded and added under the event's sequence number. Catching up from the
///   last event recorded in meta.json is idempotent (hnswlib replaces a label it already has).
/// - Saved atomically (temp file, fsync, rename) after enough new versions (`saveEvery`, or a
///   quarter of the index, whichever is more, so a build writes O(n) in all) or `saveInterval`
///   seconds with new versions, at the end of a command, and when the mount stops:
///   the graph first, then meta.json, so meta.json never claims more than the graph holds. A crash
///   loses only work, which the next catch-up redoes.
/// - Detected and rebuilt from scratch: a missing, unreadable or corrupt index, another store's
///   index (store id), another embedder's (embedder id or dimension), or one ahead of the log.
/// - Writes to the store never wait for it: the mount runs it on a thread of its own.
public final class SimilarityIndex: @unchecked Sendable {
    public enum State: Sendable, Equatable {
        /// The saved index is being read (right after a mount starts).
        case loading
        /// Built, possibly behind the log (see `Status.behind`).
        case ready
        /// Being built from scratch: queries fail with `.unavailable` until done.
        case building(reason: String)
        /// Could not be built (the reason says why).
        case failed(String)
    }

    public struct Status: Sendable {
        public var embedder: String
        public var dimension: Int
        public var versions: Int
        public var lastIndexed: UInt64
        public var head: UInt64
        public var state: State
        /// Events the index has not looked at yet.
        public var behind: UInt64 { head > lastIndexed ? head - lastIndexed : 0 }
    }

    struct Meta: Codable {
        var format: String
        var store: String
        var embedder: String
        var dimension: Int
        var lastSeq: UInt64
        var count: Int
    }

    static let format = "layerfs-index/1"

    public let store: Store
    public let directory: String
    public let embedder: any Embedder
    let logger: Logger
    /// Versions between saves while catching up.
    public var saveEvery = 2_000
    /// Seconds between saves while catching up (a slow embedder still saves its progress).
    public var saveInterval: Double = 5

    struct Inner {
        var index: HNSWIndex?
        var lastSeq: UInt64 = 0
        var state: State = .loading
        var lockFD: Int32 = -1
        /// Versions added since the last save, and when that was.
        var unsaved = 0
        var lastSave = Date()
        /// The last event recorded in the saved meta.json.
        var savedSeq: UInt64 = 0
    }
    private let inner = Mutex(Inner())
    private let stopFlag = Mutex(false)
    private let crashed = Mutex(false)

    /// Tests: lets go of the lock, as a process's death would.
    func releaseLockForTesting() {
        let fd = inner.withLock { i -> Int32 in
            let fd = i.lockFD
            i.lockFD = -1
            return fd
        }
        if fd >= 0 { close(fd) }
    }

    /// Tests: the running catch-up stops at once without saving, as a crash would.
    func simulateCrashForTesting() { crashed.withLock { $0 = true } }
    /// True while the background thread runs.
    private let workerRunning = Mutex(false)

    /// The default directory for a store's index: `/var/lib/layerfs/index/<store id>`.
    public static func defaultDirectory(for store: Store) -> String { "/var/lib/layerfs/index/\(store.storeID)" }

    /// The default directory for a replica's own index: `<store id>-replica-<12 hex digits of the
    /// SHA-256 of the replica's absolute path>`, so that a primary and its replicas on one machine
    /// each keep their own (indexes are never streamed; each side builds its own from its log).
    public static func defaultDirectory(forReplica replica: String, of store: Store) -> String {
        "/var/lib/layerfs/index/\(store.storeID)-replica-\(SHA256.hash(replica).hex.prefix(12))"
    }

    public init(store: Store, directory: String, embedder: any Embedder, logger: Logger = Logger(label: "layerfs.index")) {
        self.store = store
        self.directory = directory
        self.embedder = embedder
        self.logger = logger
    }

    deinit {
        let fd = inner.withLock { $0.lockFD }
        if fd >= 0 { close(fd) }
    }

    var metaPath: String { directory + "/meta.json" }
    var graphPath: String { directory + "/hnsw.bin" }
    var lockPath: String { directory + "/lock" }

    // MARK: Opening

    /// Creates the index directory (and the directories above it) if needed, and makes it mode 0700:
    /// the vectors are derived from the content of every version, also of private and deleted files.
    static func makePrivateDirectory(_ directory: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw SimilarityError(.io, "index directory \(directory): \(error.localizedDescription)")
        }
        guard chmod(directory, 0o700) == 0 else {
            throw SimilarityError(.io, "index directory \(directory): cannot make it private (chmod 0700): \(String(cString: strerror(errno)))")
        }
    }

    /// Takes the index directory's lock (created if needed). `.locked` if another process holds it.
    public func lock() throws {
        if inner.withLock({ $0.lockFD }) >= 0 { return }
        try Self.makePrivateDirectory(directory)
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw SimilarityError(.io, "index directory \(directory): cannot open its lock: \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw SimilarityError(.locked, "the index in \(directory) is maintained by another process (a mount of the store, or a reindex)")
        }
        inner.withLock { $0.lockFD = fd }
    }

    /// Loads the index if it is usable for this store and embedder; otherwise starts from empty
    /// (the state says why it is being rebuilt). Needs the lock unless `readOnly`.
    public func load(readOnly: Bool = false) {
        let loaded = Self.loadExisting(directory: directory, store: store, embedder: embedder)
        inner.withLock { i in
            switch loaded {
            case .success(let (index, meta)):
                i.index = index
                i.lastSeq = meta.lastSeq
                i.savedSeq = meta.lastSeq
                i.state = .ready
            case .failure(let reason):
                i.index = try? HNSWIndex(dimension: embedder.dimension, capacity: 1024)
                i.lastSeq = 0
                i.savedSeq = 0
                i.state = .building(reason: reason.description)
            }
        }
        if case .failure(let reason) = loaded {
            logger.info("similarity index \(directory): rebuilding from the log: \(reason)")
        }
    }

    struct Reason: Error, CustomStringConvertible {
        var description: String
    }

    static func loadExisting(directory: String, store: Store, embedder: any Embedder) -> Result<(HNSWIndex, Meta), Reason> {
        let metaPath = directory + "/meta.json"
        guard let data = FileManager.default.contents(atPath: metaPath) else { return .failure(Reason(description: "no index yet")) }
        guard let meta = try? JSONDecoder().decode(Meta.self, from: data), meta.format == format else {
            return .failure(Reason(description: "meta.json is not a layerfs index description"))
        }
        guard meta.store == store.storeID else {
            return .failure(Reason(description: "the index belongs to store \(meta.store), not \(store.storeID)"))
        }
        guard meta.embedder == embedder.id, meta.dimension == embedder.dimension else {
            return .failure(Reason(description: "the index was built with embedder \(meta.embedder), not \(embedder.id)"))
        }
        guard meta.lastSeq <= store.headSequence else {
            return .failure(Reason(description: "the index is ahead of the log (event \(meta.lastSeq) > head \(store.headSequence))"))
        }
        do {
            let index = try HNSWIndex.load(path: directory + "/hnsw.bin", dimension: meta.dimension)
            guard index.count >= meta.count else {
                return .failure(Reason(description: "hnsw.bin holds \(index.count) versions, meta.json says \(meta.count)"))
            }
            return .success((index, meta))
        } catch {
            return .failure(Reason(description: "hnsw.bin: \(error)"))
        }
    }

    // MARK: Building

    /// Indexes every event after the last indexed one, up to the head at the call. `progress`
    /// gets (events done, events to do). Saves along the way (see the type's comment) and, with
    /// `saveAtEnd`, at the end if anything is unsaved; the mount's thread passes false and saves
    /// by the same rules, and when it stops.
    public func catchUp(saveAtEnd: Bool = true, progress: ((UInt64, UInt64) -> Void)? = nil) throws {
        let (start, index) = inner.withLock { ($0.lastSeq, $0.index) }
        guard let index else { throw SimilarityError(.unavailable, "the index is not loaded") }
        let head = store.headSequence
        guard head > start else {
            finish(saveAtEnd: saveAtEnd)
            return
        }
        var seq = start + 1
        while seq <= head {
            if stopFlag.withLock({ $0 }) { break }
            if crashed.withLock({ $0 }) { throw SimilarityError(.io, "simulated crash") }
            let event: Event
            do { event = try store.event(seq) } catch {
                throw SimilarityError(.io, "reading event \(seq) of \(store.path): \(error)")
            }
            if IndexedText.isIndexed(event), let path = event.path {
                let text = try versionText(path: path, seq: seq)
                let vector = try embedder.embed(text)
                try index.add(vector, label: seq)
                inner.withLock { $0.unsaved += 1 }
            }
            inner.withLock { $0.lastSeq = seq }
            if saveDue() { try save() }
            progress?(seq - start, head - start)
            seq += 1
        }
        if stopFlag.withLock({ $0 }) { return }
        finish(saveAtEnd: saveAtEnd)
        if saveAtEnd { try saveIfUnsaved() }
    }

    /// Enough new versions, or enough time with new versions, since the last save.
    private func saveDue() -> Bool {
        inner.withLock { i in
            guard i.unsaved > 0 else { return false }
            let count = i.index?.count ?? 0
            return i.unsaved >= max(saveEvery, count / 4) || Date().timeIntervalSince(i.lastSave) >= saveInterval
        }
    }

    /// Caught up: a build from scratch becomes ready (and, in the background, is saved at once,
    /// so a restart does not build it again).
    private func finish(saveAtEnd: Bool) {
        let wasBuilding = inner.withLock { i -> Bool in
            if case .building = i.state {
                i.state = .ready
                return true
            }
            return false
        }
        if wasBuilding && !saveAtEnd { try? saveIfUnsaved() }
    }

    /// Seconds since the last save if anything is unsaved; 0 otherwise.
    private func unsavedFor() -> Double {
        inner.withLock { i in
            (i.unsaved > 0 || i.lastSeq != i.savedSeq) ? Date().timeIntervalSince(i.lastSave) : 0
        }
    }

    /// Saves if anything was added, or events were looked at, since the last save.
    public func saveIfUnsaved() throws {
        let due = inner.withLock { $0.unsaved > 0 || $0.lastSeq != $0.savedSeq }
        if due { try save() }
    }

    /// The text of the version event `seq` produced at `path`.
    func versionText(path: String, seq: UInt64) throws -> String {
        do {
            let info = try store.stat(path, at: seq)
            guard info.kind == .file else { return path }
            let content = try store.openContent(info)
            return IndexedText.make(path: path, content: try content.read(offset: 0, count: IndexedText.contentLimit))
        } catch {
            throw SimilarityError(.io, "reading the version of \(path) at event \(seq): \(error)")
        }
    }

    /// Writes the graph, then meta.json, each atomically and durably.
    public func save() throws {
        let (index, lastSeq, locked) = inner.withLock { ($0.index, $0.lastSeq, $0.lockFD >= 0) }
        guard let index else { return }
        // Only the process holding the lock writes the index (a command reading a mounted
        // store's index never does).
        guard locked else { return }
        let unsavedBefore = inner.withLock { $0.unsaved }
        do {
            try Self.makePrivateDirectory(directory)
            try index.save(to: graphPath)
            let meta = Meta(
                format: Self.format, store: store.storeID, embedder: embedder.id, dimension: embedder.dimension,
                lastSeq: lastSeq, count: index.count)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try Self.writeDurably(try encoder.encode(meta), to: metaPath)
            inner.withLock { i in
                i.unsaved = max(0, i.unsaved - unsavedBefore)
                i.lastSave = Date()
                i.savedSeq = lastSeq
            }
        } catch {
            throw SimilarityError(.io, "saving the index in \(directory): \(error)")
        }
    }

    static func writeDurably(_ data: Data, to path: String) throws {
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw SimilarityError(.io, "\(temporary): \(String(cString: strerror(errno)))") }
        let written = data.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd)
        close(fd)
        guard written == data.count, synced == 0, rename(temporary, path) == 0 else {
            unlink(temporary)
            throw SimilarityError(.io, "\(path): \(String(cString: strerror(errno)))")
        }
        let dir = open((path as NSString).deletingLastPathComponent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dir >= 0 {
            fsync(dir)
            close(dir)
        }
    }

    /// Deletes the index files and builds again from the first event.
    public func rebuild(progress: ((UInt64, UInt64) -> Void)? = nil) throws {
        unlink(metaPath)
        unlink(graphPath)
        let fresh = try HNSWIndex(dimension: embedder.dimension, capacity: 1024)
        inner.withLock { i in
            i.index = fresh
            i.lastSeq = 0
            i.savedSeq = 0
            i.unsaved = 0
            i.state = .building(reason: "rebuild asked for")
        }
        try catchUp(progress: progress)
    }

    // MARK: In the background (the mount)

    /// Loads (or starts a rebuild) and keeps the index caught up with the log on a thread of its
    /// own until `stop()`: catch up, then look for new events every `interval` seconds.
    public func startBackground(interval: Double = 1) {
        workerRunning.withLock { $0 = true }
        let thread = Thread { [self] in
            defer { self.workerRunning.withLock { $0 = false } }
            self.load()
            while !self.stopFlag.withLock({ $0 }) {
                do {
                    try self.catchUp(saveAtEnd: false)
                    // Idle with unsaved work: saved once it is `saveInterval` old.
                    if self.unsavedFor() >= self.saveInterval { try self.saveIfUnsaved() }
                } catch {
                    self.logger.error("similarity index \(self.directory): \(error)")
                    self.inner.withLock { i in
                        if case .building = i.state { i.state = .failed("\(error)") }
                    }
                }
                var waited = 0.0
                while waited < interval && !self.stopFlag.withLock({ $0 }) {
                    usleep(50_000)
                    waited += 0.05
                }
            }
        }
        thread.name = "layerfs-index"
        thread.start()
    }

    /// Stops the background thread (after the event it is on) and saves what is unsaved.
    public func stop() {
        stopFlag.withLock { $0 = true }
        // The thread notices within 50 ms or after its current event.
        let deadline = Date().addingTimeInterval(30)
        while workerRunning.withLock({ $0 }), Date() < deadline { usleep(20_000) }
        if case .ready = inner.withLock({ $0.state }) {
            do { try saveIfUnsaved() } catch { logger.error("similarity index \(directory): \(error)") }
        }
    }

    /// The index cannot be used at all (its directory cannot be created...): queries say why.
    public func markUnavailable(_ reason: String) {
        inner.withLock { $0.state = .failed(reason) }
    }

    // MARK: Queries

    public var status: Status {
        inner.withLock { i in
            Status(
                embedder: embedder.id, dimension: embedder.dimension, versions: i.index?.count ?? 0, lastIndexed: i.lastSeq,
                head: store.headSequence, state: i.state)
        }
    }

    /// The `k` versions most similar to `query`, best first.
    public func query(_ query: String, k: Int) throws -> [SimilarityMatch] {
        guard k > 0, k <= 1000 else { throw SimilarityError(.invalidQuery, "k must be 1...1000") }
        guard !query.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw SimilarityError(.invalidQuery, "the query is empty")
        }
        let (index, state) = inner.withLock { ($0.index, $0.state) }
        switch state {
        case .ready: break
        case .loading: throw SimilarityError(.unavailable, "the similarity index is being loaded")
        case .building(let reason): throw SimilarityError(.unavailable, "the similarity index is being built (\(reason))")
        case .failed(let reason): throw SimilarityError(.unavailable, "the similarity index is unavailable: \(reason)")
        }
        guard let index else { throw SimilarityError(.unavailable, "the similarity index is not loaded") }
        let vector = try embedder.embed(query)
        var out: [SimilarityMatch] = []
        // The index's default ef (recall@10 ≥ 0.95); more for large k.
        for hit in try index.search(vector, k: k, ef: k > HNSWIndex.defaultEf / 2 ? 2 * k : nil) {
            guard let event = try? store.event(hit.label), let path = event.path else { continue }
            out.append(SimilarityMatch(seq: hit.label, path: path, time: event.time, similarity: hit.similarity))
        }
        return out
    }
}
