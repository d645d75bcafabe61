#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import Logging
import Synchronization

/// A layerfs store: the hash-chained event log and everything derived from it.
///
/// Thread safety: every method may be called from any thread. Lock order: `sealLock` before
/// `state`; `state` is never held across an fsync or a snapshot. Commits append under `state`
/// and then wait for durability in the group commit, outside it.
public final class Store: @unchecked Sendable {
    public enum AccessMode: Sendable { case readOnly, readWrite }

    public struct Options: Sendable {
        public var sealPolicy: SealPolicy
        public var logger: Logger
        /// Called while the log is read at open: (bytes done, bytes total).
        public var progress: (@Sendable (UInt64, UInt64) -> Void)?
        /// Read-only opens only: the store as of its last block. Events after the last block's
        /// `last` are neither read nor checked, and the head file (which may name them) is not
        /// consulted. This is how a replica reads a received block snapshot, which may hold
        /// events appended while that block was being sealed (FORMAT.md §8.4).
        public var sealedOnly = false
        /// Read-write opens: sign every block sealed with this key, whatever the store's own
        /// setting (`metadata/signing_key`) says.
        public var signingKey: Ed25519.PrivateKey?

        public init(sealPolicy: SealPolicy = SealPolicy(), logger: Logger = Logger(label: "layerfs.store"), progress: (@Sendable (UInt64, UInt64) -> Void)? = nil) {
            self.sealPolicy = sealPolicy
            self.logger = logger
            self.progress = progress
        }
    }

    public let path: String
    public let storeID: String
    public let accessMode: AccessMode
    /// True when the store is a btrfs subvolume: seals then take read-only snapshots.
    public let isBtrfsSubvolume: Bool
    /// What open found and did (torn tail moved aside, unclean shutdown...), for status and logs.
    public let openNotes: [String]

    let logger: Logger
    let policy: SealPolicy
    let objects: ObjectStore
    let logPath: String
    private let logFD: Int32
    private let blocksFD: Int32?
    private let headFD: Int32?
    private let writerLock: WriterLock?
    private let groupCommit: GroupCommit?
    private let sealLock = Mutex<Void>(())
    private let sealQueue = DispatchQueue(label: "layerfs.sealer")
    private let timer: DispatchSourceTimer?
    /// The event hashes of the block last asked for an inclusion proof.
    private let leafCache = Mutex<(block: UInt64, leaves: [Digest])?>(nil)
    /// Signs every block this writer seals (FORMAT.md §8.7); nil: blocks are not signed.
    private let signer: Ed25519.PrivateKey?

    struct State: ~Copyable {
        var index: StateIndex
        var headHash: Digest
        var logLength: UInt64
        var blocks: [BlockHeader]
        /// Hashes of the events after the last sealed block, in order.
        var unsealed: [Digest]
        var sealScheduled = false
        /// Set once by the first close(); commits still run until `closed`.
        var closing = false
        var closed = false
    }

    let state: Mutex<State>

    // MARK: Layout

    public static func eventsPath(_ store: String) -> String { store + "/events.jsonl" }
    static func blocksPath(_ store: String) -> String { store + "/blocks.jsonl" }
    static func headPath(_ store: String) -> String { store + "/metadata/current_hash" }
    static func blockHeadPath(_ store: String) -> String { store + "/metadata/current_block" }
    static func lockPath(_ store: String) -> String { store + "/metadata/writer.lock" }
    static func recoveredPath(_ store: String) -> String { store + "/metadata/recovered" }
    /// The store's signing setting: the absolute path of the private key that signs its blocks.
    public static func signingKeySettingPath(_ store: String) -> String { store + "/metadata/signing_key" }
    public static func snapshotsPath(_ store: String) -> String { store + "/.snapshots" }

    // MARK: Creating

    /// Creates a new, empty store at `path` (which must not exist, or be an empty directory): a
    /// btrfs subvolume when the parent is on btrfs, a plain directory otherwise. Writes the
    /// genesis event. Returns the new store's id.
    @discardableResult
    public static func create(at path: String, by who: Provenance = .currentProcess(), logger: Logger = Logger(label: "layerfs.store")) throws(LayerError) -> String {
        let parent = StorePath.parent(ofFilesystemPath: path)
        guard FileSystem.isDirectory(parent) else {
            throw LayerError(.notFound, "parent directory \(parent) does not exist", path: path)
        }
        var subvolume = false
        if FileSystem.exists(path) {
            guard FileSystem.isDirectory(path) else { throw LayerError(.alreadyExists, "exists and is not a directory", path: path) }
            guard try FileSystem.listDirectory(path).isEmpty else {
                throw LayerError(.alreadyExists, "directory is not empty (is it a store already?)", path: path)
            }
            subvolume = (try? Btrfs.isSubvolume(path)) ?? false
            if !subvolume, (try? Btrfs.isBtrfs(path)) == true {
                logger.warning(
                    "\(path) is a plain directory on btrfs, not a subvolume: blocks will be logical only (no snapshots). Let `layerfs init` create the directory to get a subvolume.",
                    metadata: ["store": "\(path)"])
            }
        } else if (try? Btrfs.isBtrfs(parent)) == true {
            try Btrfs.createSubvolume(at: path)
            subvolume = true
        } else {
            try FileSystem.makeDirectory(path, mode: 0o700)
        }
        // The store holds every version ever written, also of files later made private or
        // deleted: only root (its owner) may read it, whatever the umask or the given directory's mode.
        guard chmod(path, 0o700) == 0 else { throw .system("chmod", errno: errno, path: path) }
        try FileSystem.makeDirectory(path + "/metadata")
        try FileSystem.makeDirectory(path + "/objects")
        if subvolume { try FileSystem.makeDirectory(snapshotsPath(path)) }

        let id = randomUUID()
        var genesis = Event(
            seq: 0, time: .now(), operation: .genesis, storeID: id, format: Event.formatName,
            provenance: who, previousHash: .zero)
        let line = EventCodec.seal(&genesis)
        let fd = try FileSystem.open(eventsPath(path), O_WRONLY | O_CREAT | O_EXCL | O_APPEND, mode: 0o644)
        defer { FileSystem.close(fd) }
        try FileSystem.writeAll(fd, line, path: eventsPath(path))
        try FileSystem.dataSync(fd, path: eventsPath(path))
        try FileSystem.writeFileAtomically(blocksPath(path), [], durable: true)
        try FileSystem.writeFileAtomically(headPath(path), HeadFile.encode(seq: 0, hash: genesis.hash), durable: true)
        try FileSystem.syncDirectory(path + "/metadata")
        try FileSystem.syncDirectory(path)
        try FileSystem.syncDirectory(parent)
        logger.info("created store", metadata: ["store": "\(path)", "id": "\(id)", "btrfs": "\(subvolume)"])
        return id
    }

    static func randomUUID() -> String {
        guard var bytes = try? FileSystem.readPrefix("/dev/urandom", count: 16), bytes.count == 16 else {
            preconditionFailure("cannot read /dev/urandom")
        }
        bytes[6] = bytes[6] & 0x0f | 0x40
        bytes[8] = bytes[8] & 0x3f | 0x80
        let hex = bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
        let h = Array(hex)
        return String(h[0..<8]) + "-" + String(h[8..<12]) + "-" + String(h[12..<16]) + "-" + String(h[16..<20]) + "-" + String(h[20..<32])
    }

    // MARK: Opening

    /// Opens a store, reading and verifying the whole log: every line's canonical form and hash,
    /// the chain, the time order, every event as a valid change, every blob, every block, and the
    /// head. A torn tail (crash mid-append) is moved aside into `metadata/recovered/` when
    /// opening for writing. Any other damage throws `.corrupt` naming the first bad event.
    public init(path rawPath: String, mode: AccessMode = .readWrite, options: Options = Options()) throws(LayerError) {
        let path = rawPath.count > 1 && rawPath.hasSuffix("/") ? String(rawPath.dropLast()) : rawPath
        self.path = path
        self.accessMode = mode
        self.logger = options.logger
        self.policy = options.sealPolicy
        self.objects = ObjectStore(root: path + "/objects")
        self.logPath = Store.eventsPath(path)
        guard FileSystem.exists(logPath) else {
            throw LayerError(.notFound, "not a layerfs store (no events.jsonl); create one with `layerfs init`", store: path)
        }

        // One writer per store.
        var lock: WriterLock?
        if mode == .readWrite {
            do throws(LayerError) { lock = try WriterLock(path: Store.lockPath(path)) } catch { throw error.inStore(path) }
            Store.removeLeftoverStaging(path)  // a dead writer's working copies: never committed data
        }
        let liveWriter = mode == .readOnly && WriterLock.isHeld(path: Store.lockPath(path))
        let uncleanShutdown = lock?.previousHolder != nil || (mode == .readOnly && !liveWriter && WriterLock.holder(path: Store.lockPath(path)) != nil)

        do throws(LayerError) {
            // The head is read before the log, so that a live writer can only have moved it forward.
            let headBytes = try? FileSystem.readFile(Store.headPath(path))
            let head = headBytes.flatMap(HeadFile.decode)
            // Likewise the block head before blocks.jsonl: a live writer seals by appending the
            // header, then rewriting metadata/current_block, so the blocks read next are at least
            // the ones it names (read after them, it could name a block sealed in between).
            let blockHead = BlockHeadRead(path: path)
            let (blocks, blocksTail) = try Store.readBlocks(path)

            if options.sealedOnly {
                guard mode == .readOnly else { throw LayerError(.invalidArgument, "a sealed-only view is read-only", store: path) }
                guard !blocks.isEmpty else { throw LayerError(.corrupt, "no sealed block to read", store: path) }
            }
            let limit = options.sealedOnly ? blocks.last?.last : nil
            let scan = try Store.scanLog(path: path, objects: objects, blocks: blocks, headSeq: limit == nil ? head?.seq : nil, through: limit, progress: options.progress)
            var notes: [String] = []
            var outcome = scan.outcome
            if let damage = outcome.damage { throw Store.damageError(damage, store: path) }
            guard let last = outcome.last, let storeID = scan.storeID else {
                throw LayerError(.corrupt, "event 0: the log holds no valid genesis event", store: path, sequence: 0)
            }
            // Blocks must lie within the log.
            if let beyond = blocks.first(where: { $0.last > last.seq }) {
                throw LayerError(
                    .corrupt, "event \(last.seq + 1) is missing: block \(beyond.number) seals events up to \(beyond.last) but the log ends at event \(last.seq)",
                    store: path, sequence: last.seq + 1)
            }
            // The head (not for a sealed-only view: it may name events after the last block).
            if options.sealedOnly {
                if last.seq != limit {
                    throw LayerError(
                        .corrupt, "event \(last.seq + 1) is missing: block \(blocks.count) seals events up to \(limit ?? 0) but the log ends at event \(last.seq)",
                        store: path, sequence: last.seq + 1)
                }
            } else if let head {
                if head.seq > last.seq {
                    throw LayerError(
                        .corrupt, "event \(last.seq + 1) is missing: metadata/current_hash names event \(head.seq), but the log ends at event \(last.seq)",
                        store: path, sequence: last.seq + 1)
                }
                if scan.headHash != head.hash {
                    throw LayerError(
                        .corrupt, "event \(head.seq): hash does not match metadata/current_hash (\(head.hash.hex))",
                        store: path, sequence: head.seq)
                }
                if head.seq < last.seq {
                    if uncleanShutdown || liveWriter {
                        notes.append("the head lagged the log by \(last.seq - head.seq) event(s) after an unclean shutdown")
                    } else {
                        throw LayerError(
                            .corrupt, "event \(head.seq + 1): events \(head.seq + 1)...\(last.seq) follow the head recorded at the last clean close (appended by hand?)",
                            store: path, sequence: head.seq + 1)
                    }
                }
            } else {
                throw LayerError(.corrupt, "metadata/current_hash is missing or unreadable", store: path, sequence: last.seq)
            }

            // A torn tail: moved aside when writing, ignored when reading.
            if let tail = outcome.tail {
                let count = tail.upperBound - tail.lowerBound
                if mode == .readWrite {
                    let saved = try Store.moveTailAside(path: path, logPath: logPath, tail: tail)
                    notes.append("moved a torn or garbage tail of \(count) byte(s) after event \(last.seq) aside to \(saved)")
                    outcome.tail = nil
                } else if !liveWriter {
                    notes.append("\(count) byte(s) after event \(last.seq) are a torn or garbage tail; the next writer moves them aside")
                }
            }
            // The block head, metadata/current_block, names the last sealed block (FORMAT.md §8.5).
            try Store.checkBlockHead(path: path, blocks: blocks, tolerateLag: uncleanShutdown || liveWriter || options.sealedOnly, read: blockHead)
            // A torn block header (crash while sealing; never acknowledged): the same treatment.
            if let blocksTail {
                if mode == .readWrite {
                    let saved = try Store.moveTailAside(path: path, logPath: Store.blocksPath(path), tail: blocksTail, name: "blocks-tail")
                    notes.append("moved a torn block header of \(blocksTail.upperBound - blocksTail.lowerBound) byte(s) aside to \(saved)")
                } else {
                    notes.append("blocks.jsonl ends in a torn block header; the next writer moves it aside")
                }
            }
            if let previous = lock?.previousHolder { notes.append("the previous writer did not close cleanly (\(previous))") }
            if mode == .readWrite {
                if let key = options.signingKey { signer = key } else { signer = try Store.configuredSigningKey(path) }
            } else {
                signer = nil
            }

            self.storeID = storeID
            self.openNotes = notes
            // A sealed-only view is a block snapshot (a replica's): its own blocks have no snapshots.
            self.isBtrfsSubvolume = !options.sealedOnly && ((try? Btrfs.isSubvolume(path)) ?? false)

            if mode == .readWrite {
                logFD = try FileSystem.open(logPath, O_RDWR | O_APPEND)
                blocksFD = try FileSystem.open(Store.blocksPath(path), O_WRONLY | O_APPEND | O_CREAT, mode: 0o644)
                headFD = try FileSystem.open(Store.headPath(path), O_WRONLY | O_CREAT, mode: 0o644)
            } else {
                logFD = try FileSystem.open(logPath, O_RDONLY)
                blocksFD = nil
                headFD = nil
            }
            writerLock = lock
            state = Mutex(
                State(
                    index: scan.index, headHash: last.hash, logLength: outcome.validLength, blocks: blocks,
                    unsealed: scan.unsealed))
            if mode == .readWrite {
                let headFD = self.headFD!
                groupCommit = GroupCommit(
                    fd: logFD, path: logPath, length: outcome.validLength, durable: last.seq,
                    afterSync: { seq, hash in
                        let bytes = HeadFile.encode(seq: seq, hash: hash)
                        _ = bytes.withUnsafeBytes { pwrite(headFD, $0.baseAddress, $0.count, 0) }
                    })
                if head?.seq != last.seq {
                    let bytes = HeadFile.encode(seq: last.seq, hash: last.hash)
                    _ = bytes.withUnsafeBytes { pwrite(headFD, $0.baseAddress, $0.count, 0) }
                }
            } else {
                groupCommit = nil
            }
        } catch {
            // A refused open leaves the shutdown state as it found it: after a clean close, an
            // empty lock (else the next open would take the store for a crashed one).
            lock?.release(clean: lock?.previousHolder == nil)
            throw error
        }

        if mode == .readWrite, let seconds = policy.everySeconds {
            let t = DispatchSource.makeTimerSource(queue: sealQueue)
            t.schedule(deadline: .now() + seconds, repeating: seconds)
            timer = t
        } else {
            timer = nil
        }
        if let timer {
            timer.setEventHandler { [weak self] in self?.sealInBackground() }
            timer.resume()
        }
        for note in openNotes { logger.warning("\(note)", metadata: ["store": "\(path)"]) }
        groupCommit?.rollback = { [weak self] in self?.rollbackToDurableLog() }
    }

    /// After a failed append or sync (the group commit has cut the log back to its durable
    /// length): rebuild the in-memory state from the log on disk, so that nothing that was not
    /// durable stays visible, and start a new commit generation.
    private func rollbackToDurableLog() {
        state.withLock { s in
            do throws(LayerError) {
                let scan = try Store.scanLog(path: path, objects: objects, blocks: s.blocks, headSeq: nil, progress: nil)
                if let damage = scan.outcome.damage { throw Store.damageError(damage, store: path) }
                guard let last = scan.outcome.last else { throw LayerError(.corrupt, "the log is empty", store: path) }
                if scan.outcome.tail != nil {
                    try FileSystem.truncate(logFD, to: scan.outcome.validLength, path: logPath)
                }
                s.index = scan.index
                s.headHash = last.hash
                s.logLength = scan.outcome.validLength
                s.unsealed = scan.unsealed
                groupCommit?.restart(length: scan.outcome.validLength)
                logger.warning("a commit failed; state rolled back to event \(last.seq)", metadata: ["store": "\(path)"])
            } catch {
                logger.critical("could not rebuild the state after a failed commit: \(error)", metadata: ["store": "\(path)"])
                s.closed = true
                groupCommit?.restart(length: s.logLength)
            }
        }
    }

    /// Opens read-write (the common case).
    public static func open(_ path: String, mode: AccessMode = .readWrite, options: Options = Options()) throws(LayerError) -> Store {
        try Store(path: path, mode: mode, options: options)
    }

    deinit {
        try? close()
        FileSystem.close(logFD)
        if let blocksFD { FileSystem.close(blocksFD) }
        if let headFD { FileSystem.close(headFD) }
    }

    static func damageError(_ damage: Damage, store: String) -> LayerError {
        // LayerError's description already says "event N"; block damage names its block in the message.
        LayerError(.corrupt, damage.sequence == nil ? damage.description : damage.message, store: store, sequence: damage.sequence)
    }

    /// `metadata/current_block` (same layout as the head file: hash, space, 20-digit block number,
    /// LF) names the last block whose header is durable. It catches a deleted last block, which
    /// would otherwise look like a torn header. Absent until the first seal.
    struct BlockHeadRead {
        var exists: Bool
        var bytes: [UInt8]?
        init(path: String) {
            let file = Store.blockHeadPath(path)
            exists = FileSystem.exists(file)
            bytes = exists ? try? FileSystem.readFile(file) : nil
        }
    }

    static func checkBlockHead(path: String, blocks: [BlockHeader], tolerateLag: Bool, read: BlockHeadRead? = nil) throws(LayerError) {
        let read = read ?? BlockHeadRead(path: path)
        guard read.exists else {
            if let first = blocks.first, !tolerateLag {
                throw LayerError(.corrupt, "block \(first.number): metadata/current_block is missing but blocks.jsonl holds \(blocks.count) block(s)", store: path)
            }
            return
        }
        guard let named = read.bytes.flatMap(HeadFile.decode) else {
            throw LayerError(.corrupt, "block \(blocks.count): metadata/current_block is unreadable", store: path)
        }
        let number = named.seq
        if number == 0 || number > UInt64(blocks.count) {
            throw LayerError(.corrupt, "block \(blocks.count + 1): missing: metadata/current_block names block \(number) but blocks.jsonl ends at block \(blocks.count)", store: path)
        }
        if blocks[Int(number) - 1].hash != named.hash {
            throw LayerError(.corrupt, "block \(number): hash does not match metadata/current_block", store: path)
        }
        if number < UInt64(blocks.count) && !tolerateLag {
            throw LayerError(.corrupt, "block \(number + 1): blocks \(number + 1)...\(blocks.count) follow metadata/current_block after a clean close (appended by hand?)", store: path)
        }
    }

    /// The block headers, checked as a chain, and the range of a torn last line (no LF), if any.
    static func readBlocks(_ path: String) throws(LayerError) -> ([BlockHeader], tail: Range<UInt64>?) {
        let file = blocksPath(path)
        guard FileSystem.exists(file) else { return ([], nil) }
        let bytes = try FileSystem.readFile(file)
        var blocks: [BlockHeader] = []
        var previous = Digest.zero
        var nextFirst: UInt64 = 0
        var previousTime = Int64.min
        for line in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).dropLast() {
            let number = UInt64(blocks.count + 1)
            switch BlockHeader.decode(line: Array(line)) {
            case .failure(let problem):
                throw LayerError(.corrupt, "block \(number): \(problem) in blocks.jsonl", store: path)
            case .success(let h):
                guard h.number == number else { throw LayerError(.corrupt, "block \(number): blocks.jsonl holds block \(h.number) here", store: path) }
                guard h.previousHash == previous else { throw LayerError(.corrupt, "block \(number): prev does not match the hash of block \(number - 1)", store: path) }
                guard h.first == nextFirst else { throw LayerError(.corrupt, "block \(number): starts at event \(h.first), expected \(nextFirst)", store: path) }
                guard h.time.nanoseconds >= previousTime else { throw LayerError(.corrupt, "block \(number): time goes backwards", store: path) }
                blocks.append(h)
                previous = h.hash
                nextFirst = h.last + 1
                previousTime = h.time.nanoseconds
            }
        }
        if let last = bytes.last, last != UInt8(ascii: "\n") {
            let start = (bytes.lastIndex(of: UInt8(ascii: "\n")) ?? -1) + 1
            return (blocks, UInt64(start)..<UInt64(bytes.count))
        }
        return (blocks, nil)
    }

    struct ScanResult {
        var outcome: LogScanner.Outcome
        var index: StateIndex
        var storeID: String?
        var headHash: Digest?
        var unsealed: [Digest]
    }

    /// Reads the whole log into a fresh index, checking blobs and block Merkle roots on the way.
    static func scanLog(
        path: String, objects: ObjectStore, blocks: [BlockHeader], headSeq: UInt64?, through limit: UInt64? = nil,
        progress: (@Sendable (UInt64, UInt64) -> Void)?
    ) throws(LayerError) -> ScanResult {
        let file = try MappedFile(path: eventsPath(path))
        var index = StateIndex()
        index.reserve(events: file.bytes.count / 200)
        var storeID: String?
        var headHash: Digest?
        var pending: [Digest] = []
        var blockIndex = 0
        let total = UInt64(file.bytes.count)
        var nextProgress: UInt64 = 0
        let outcome = LogScanner.scan(file.bytes, through: limit) { (event, offset, length) throws(Damage) in
            if event.seq == 0 {
                guard event.operation == .genesis, event.format == Event.formatName, let id = event.storeID else {
                    throw Damage(sequence: 0, message: "the first event is not a genesis event of format \(Event.formatName)")
                }
                storeID = id
            }
            let plan: StateIndex.Plan
            do throws(LayerError) { plan = try index.plan(event) } catch {
                throw Damage(sequence: event.seq, message: "not a valid change: \(error.description)")
            }
            if case .object(let digest)? = event.content {
                do throws(LayerError) { _ = try objects.load(digest, size: event.size) } catch {
                    throw Damage(sequence: event.seq, message: error.message)
                }
            }
            index.apply(plan, seq: event.seq, time: event.time, offset: offset)
            if event.seq == headSeq { headHash = event.hash }
            pending.append(event.hash)
            if blockIndex < blocks.count, event.seq == blocks[blockIndex].last {
                let block = blocks[blockIndex]
                if MerkleTree.root(pending) != block.merkleRoot {
                    throw Damage(sequence: nil, block: block.number, message: "Merkle root of events \(block.first)...\(block.last) does not match the block header")
                }
                if block.time.nanoseconds < event.time.nanoseconds {
                    throw Damage(sequence: nil, block: block.number, message: "sealed before its last event")
                }
                pending.removeAll(keepingCapacity: true)
                blockIndex += 1
            }
            if let progress, offset >= nextProgress {
                progress(offset + UInt64(length), total)
                nextProgress = offset + total / 100 + 1
            }
        }
        progress?(total, total)
        return ScanResult(outcome: outcome, index: index, storeID: storeID, headHash: headHash, unsealed: pending)
    }

    /// Copies a torn tail into metadata/recovered/ (durably), then cuts it off the log.
    static func moveTailAside(path: String, logPath: String, tail: Range<UInt64>, name prefix: String = "events-tail") throws(LayerError) -> String {
        let fd = try FileSystem.open(logPath, O_RDWR)
        defer { FileSystem.close(fd) }
        let bytes = try FileSystem.preadAll(fd, count: Int(tail.upperBound - tail.lowerBound), offset: tail.lowerBound, path: logPath)
        let directory = recoveredPath(path)
        try FileSystem.makeDirectory(directory)
        let name = "\(directory)/\(prefix)-\(Timestamp.now().canonical)-at-byte-\(tail.lowerBound).bin"
        try FileSystem.writeFileAtomically(name, bytes, durable: true)
        try FileSystem.syncDirectory(path + "/metadata")
        try FileSystem.truncate(fd, to: tail.lowerBound, path: logPath)
        try FileSystem.dataSync(fd, path: logPath)
        return name
    }

    private func writeHead(seq: UInt64, hash: Digest) {
        guard let headFD else { return }
        let bytes = HeadFile.encode(seq: seq, hash: hash)
        _ = bytes.withUnsafeBytes { pwrite(headFD, $0.baseAddress, $0.count, 0) }
    }

    // MARK: Closing

    /// Seals per policy, makes the head durable, and releases the writer lock. Idempotent.
    public func close() throws(LayerError) {
        // Claim the close atomically: a concurrent close (or deinit) returns at once.
        let wasClosing = state.withLock { s in
            let was = s.closing
            s.closing = true
            return was
        }
        guard !wasClosing else { return }
        timer?.cancel()
        var failure: LayerError?
        if accessMode == .readWrite {
            if policy.onClose {
                do throws(LayerError) { try seal() } catch { failure = error; logger.error("seal at close failed: \(error)", metadata: ["store": "\(path)"]) }
            }
        }
        let (head, hash) = state.withLock { s in
            s.closed = true
            return (s.index.head ?? 0, s.headHash)
        }
        if accessMode == .readWrite, let groupCommit, let headFD {
            var clean = groupCommit.poisoned == nil
            do throws(LayerError) {
                try groupCommit.waitDurable(groupCommit.ticket(for: head))
                writeHead(seq: head, hash: hash)
                try FileSystem.dataSync(headFD, path: Store.headPath(path))
            } catch {
                clean = false
                failure = failure ?? error
            }
            writerLock?.release(clean: clean)
        }
        if let failure { throw failure }
    }

    // MARK: Committing changes

    /// Appends one event for `change` and returns its sequence number once it is durable; nil when
    /// the change would change nothing (same content and mode, same owner...). Throws the POSIX-
    /// style error for an invalid change (nothing is written), or the I/O error of a failed append
    /// or sync (nothing acknowledged; a failed sync also makes every later commit fail).
    @discardableResult
    public func commit(_ change: Change, by who: Provenance) throws(LayerError) -> UInt64? {
        guard accessMode == .readWrite, let groupCommit else {
            throw LayerError(.readOnly, "the store is open read-only", store: path)
        }
        if let poisoned = groupCommit.poisoned {
            throw LayerError(.io, "an earlier sync failed (\(poisoned.message)); reopen the store", store: path, errno: EIO)
        }
        groupCommit.arrive()
        do throws(LayerError) {
            let appended: GroupCommit.Ticket?
            do throws(LayerError) { appended = try append(change, by: who) } catch {
                groupCommit.depart()
                throw error
            }
            guard let ticket = appended else {
                groupCommit.depart()
                return nil
            }
            try groupCommit.waitDurable(ticket)
            maybeScheduleSeal()
            return ticket.seq
        } catch {
            throw error.inStore(path)
        }
    }

    private func makeEventBody(_ change: Change, seq: UInt64, time: Timestamp, prev: Digest, who: Provenance) throws(LayerError) -> Event {
        var e = Event(seq: seq, time: time, operation: .write, provenance: who, previousHash: prev)
        switch change {
        case .write(let p, let bytes, let mode):
            e.operation = .write; e.path = try StorePath.normalize(p); e.mode = mode; e.size = UInt64(bytes.count)
        case .writeStaged(let p, let staged, let mode):
            e.operation = .write; e.path = try StorePath.normalize(p); e.mode = mode; e.size = staged.size
        case .truncate(let p, let size):
            e.operation = .truncate; e.path = try StorePath.normalize(p); e.size = size
        case .mkdir(let p, let mode):
            e.operation = .mkdir; e.path = try StorePath.normalize(p); e.mode = mode & 0o7777
        case .rmdir(let p):
            e.operation = .rmdir; e.path = try StorePath.normalize(p)
        case .unlink(let p):
            e.operation = .unlink; e.path = try StorePath.normalize(p)
        case .rename(let from, let to):
            e.operation = .rename; e.path = try StorePath.normalize(from); e.destination = try StorePath.normalize(to)
        case .symlink(let p, let target):
            e.operation = .symlink; e.path = try StorePath.normalize(p); e.target = target
        case .chmod(let p, let mode):
            e.operation = .chmod; e.path = try StorePath.normalize(p); e.mode = mode & 0o7777
        case .chown(let p, let owner, let group):
            guard owner != nil || group != nil else { throw LayerError(.invalidArgument, "chown needs an owner or a group", path: p) }
            e.operation = .chown; e.path = try StorePath.normalize(p); e.owner = owner; e.group = group
        case .setModificationTime(let p, let mtime):
            guard mtime >= Timestamp.minimum, mtime <= Timestamp.maximum else {
                throw LayerError(.invalidArgument, "modification time out of range", path: p)
            }
            e.operation = .utimens; e.path = try StorePath.normalize(p); e.mtime = mtime
        }
        return e
    }

    /// Content is held in memory whole (events carry full content): files are capped at 4 GiB.
    public static let maximumFileSize: UInt64 = 1 << 32

    /// Builds, validates and writes the event under the state lock; returns its ticket (nil: no-op).
    private func append(_ change: Change, by who: Provenance) throws(LayerError) -> GroupCommit.Ticket? {
        // Content: large content goes to a blob first (outside the lock; blobs are idempotent).
        var newContent: [UInt8]?
        var blob: Digest?
        var stagedSize: UInt64?
        var truncatedVersion: UInt64?
        switch change {
        case .write(_, let bytes, _):
            newContent = bytes
        case .writeStaged(_, let staged, _):
            guard staged.size <= Store.maximumFileSize else {
                throw LayerError(.invalidArgument, "larger than the maximum file size (\(Store.maximumFileSize) bytes)", path: change.path, errno: EFBIG)
            }
            if staged.size <= UInt64(ObjectStore.inlineLimit) {
                newContent = try staged.readAll()
            } else {
                blob = try storeStaged(staged)  // durable before the event that names it
                stagedSize = staged.size
            }
        case .truncate(let p, let size):
            // Needs the current content; re-checked under the lock below.
            let info = try stat(try StorePath.normalize(p))
            guard info.kind == .file else {
                throw LayerError(info.kind == .directory ? .isDirectory : .invalidArgument, "not a regular file", path: p)
            }
            guard size <= Store.maximumFileSize else {
                throw LayerError(.invalidArgument, "larger than the maximum file size (\(Store.maximumFileSize) bytes)", path: p, errno: EFBIG)
            }
            var bytes = try read(info)
            if UInt64(bytes.count) > size { bytes.removeLast(bytes.count - Int(size)) } else {
                bytes.append(contentsOf: [UInt8](repeating: 0, count: Int(size) - bytes.count))
            }
            newContent = bytes
            truncatedVersion = info.version
        default:
            break
        }
        if let bytes = newContent, bytes.count > ObjectStore.inlineLimit {
            blob = try objects.store(bytes)
        }

        return try state.withLock { (s: inout State) throws(LayerError) -> GroupCommit.Ticket? in
            guard !s.closed else { throw LayerError(.io, "the store is closed", errno: EIO) }
            guard let head = s.index.head else { throw LayerError(.corrupt, "empty log") }
            let now = Timestamp.now()
            let last = s.index.time(of: head)
            let time = now < last ? last : now  // time never goes backwards
            var event = try makeEventBody(change, seq: head + 1, time: time, prev: s.headHash, who: who)
            if let bytes = newContent {
                event.content = blob.map { .object($0) } ?? .inline(bytes)
            } else if let blob, let stagedSize {
                event.content = .object(blob)
                event.size = stagedSize
            }
            // Defaults that depend on the current state, and no-op detection.
            let current = s.index.lookup(event.path!, at: head)
            switch event.operation {
            case .write:
                if event.mode == nil { event.mode = UInt32(current?.mode ?? 0o644) }
                event.mode = event.mode! & 0o7777
                if let current, current.kind == .file, current.mode == event.mode, current.size == event.size {
                    if let newContent, let existing = try? contentLocked(&s, current), existing == newContent { return nil }
                    if let blob, newContent == nil, let (offset, length) = Optional(lineRange(current.contentSeq, s)),
                        let existing = try? decodeLine(seq: current.contentSeq, offset: offset, length: length),
                        existing.content == .object(blob)
                    {
                        return nil
                    }
                }
            case .truncate:
                // The new content was computed from the version read before the lock.
                if let current, current.version != truncatedVersion {
                    throw LayerError(.busy, "the file changed during the truncate; retry", path: event.path)
                }
                event.mode = UInt32(current?.mode ?? 0o644)
                if let current, current.size == event.size { return nil }
            case .chmod:
                if let current, current.kind != .symlink, current.mode == event.mode { return nil }
            case .chown:
                if let current, (event.owner ?? current.uid) == current.uid, (event.group ?? current.gid) == current.gid { return nil }
            case .utimens:
                if let current, current.mtime == event.mtime { return nil }
            default:
                break
            }
            let plan = try s.index.plan(event)
            let line = EventCodec.seal(&event)
            // The line goes to the group commit's buffer; the batch's leader writes and syncs it.
            let ticket = try groupCommit!.enqueue(line, seq: event.seq, hash: event.hash)
            s.index.apply(plan, seq: event.seq, time: event.time, offset: s.logLength)
            s.logLength += UInt64(line.count)
            s.headHash = event.hash
            s.unsealed.append(event.hash)
            return ticket
        }
    }

    // MARK: Reading state

    /// The sequence number of the last event.
    public var headSequence: UInt64 { state.withLock { $0.index.head ?? 0 } }
    public var headHash: Digest { state.withLock { $0.headHash } }

    /// The last event at or before `time`; `.outOfRange` if `time` is before the genesis event.
    public func sequence(at time: Timestamp) throws(LayerError) -> UInt64 {
        guard let seq = state.withLock({ $0.index.sequence(atOrBefore: time) }) else {
            throw LayerError(.outOfRange, "\(time) is before the store's first event", store: path)
        }
        return seq
    }

    public func time(ofSequence seq: UInt64) throws(LayerError) -> Timestamp {
        try state.withLock { (s: inout State) throws(LayerError) -> Timestamp in
            guard let head = s.index.head, seq <= head else {
                throw LayerError(.outOfRange, "event \(seq) does not exist (head is \(s.index.head ?? 0))", store: path)
            }
            return s.index.time(of: seq)
        }
    }

    private func resolve(_ seq: UInt64?, _ s: borrowing State) throws(LayerError) -> UInt64 {
        let head = s.index.head ?? 0
        guard let seq else { return head }
        guard seq <= head else { throw LayerError(.outOfRange, "event \(seq) does not exist (head is \(head))", store: path) }
        return seq
    }

    /// The node at `path` as of event `seq` (nil: the head).
    public func stat(_ path: String, at seq: UInt64? = nil) throws(LayerError) -> NodeInfo {
        let p = try StorePath.normalize(path)
        return try state.withLock { (s: inout State) throws(LayerError) -> NodeInfo in
            let at = try resolve(seq, s)
            guard let info = s.index.lookup(p, at: at) else {
                throw LayerError(.notFound, "no such file or directory at event \(at)", store: self.path, path: p)
            }
            return info
        }
    }

    public struct DirectoryEntry: Hashable, Sendable {
        public var name: String
        public var info: NodeInfo
    }

    /// The entries of a directory as of event `seq` (nil: the head), sorted by name.
    public func list(_ path: String, at seq: UInt64? = nil) throws(LayerError) -> [DirectoryEntry] {
        let p = try StorePath.normalize(path)
        return try state.withLock { (s: inout State) throws(LayerError) -> [DirectoryEntry] in
            let at = try resolve(seq, s)
            guard let entries = s.index.list(p, at: at) else {
                if let info = s.index.lookup(p, at: at), info.kind != .directory {
                    throw LayerError(.notDirectory, "not a directory at event \(at)", store: self.path, path: p)
                }
                throw LayerError(.notFound, "no such directory at event \(at)", store: self.path, path: p)
            }
            return entries.map { DirectoryEntry(name: $0.name, info: $0.info) }
        }
    }

    /// Every change of one path, oldest first: (event, the version it became or nil if deleted).
    public func history(_ path: String) throws(LayerError) -> [(seq: UInt64, info: NodeInfo?)] {
        let p = try StorePath.normalize(path)
        return state.withLock { $0.index.history(p) }
    }

    /// Where event `seq`'s line is: (offset, length without the newline).
    private func lineRange(_ seq: UInt64, _ s: borrowing State) -> (UInt64, Int) {
        let start = s.index.offset(of: seq)
        let end = seq == s.index.head ? s.logLength : s.index.offset(of: seq + 1)
        return (start, Int(end - start) - 1)
    }

    /// Reads and decodes event `seq` from the log (verifying its hash again).
    public func event(_ seq: UInt64) throws(LayerError) -> Event {
        let (offset, length) = try state.withLock { (s: inout State) throws(LayerError) -> (UInt64, Int) in
            _ = try resolve(seq, s)
            return lineRange(seq, s)
        }
        return try decodeLine(seq: seq, offset: offset, length: length)
    }

    private func decodeLine(seq: UInt64, offset: UInt64, length: Int) throws(LayerError) -> Event {
        // A line still in the group commit's buffer is read from memory.
        let line: [UInt8]
        if let pending = groupCommit?.pendingBytes(offset: offset, count: length) {
            line = pending
        } else {
            line = try FileSystem.preadAll(logFD, count: length, offset: offset, path: logPath)
        }
        switch EventCodec.decode(line: line) {
        case .success(let e) where e.seq == seq: return e
        case .success(let e):
            throw LayerError(.corrupt, "expected event \(seq) at byte \(offset), found \(e.seq)", store: path, sequence: seq)
        case .failure(let problem):
            throw LayerError(.corrupt, "changed on disk since the store was opened: \(problem)", store: path, sequence: seq)
        }
    }

    private func contentLocked(_ s: inout State, _ info: NodeInfo) throws(LayerError) -> [UInt8] {
        let (offset, length) = lineRange(info.contentSeq, s)
        return try content(of: decodeLine(seq: info.contentSeq, offset: offset, length: length))
    }

    private func content(of event: Event) throws(LayerError) -> [UInt8] {
        switch event.content {
        case .inline(let bytes)?: return bytes
        case .object(let digest)?: return try objects.load(digest, size: event.size)
        case nil: throw LayerError(.corrupt, "event has no content", store: path, sequence: event.seq)
        }
    }

    /// The content of a file version.
    public func read(_ info: NodeInfo) throws(LayerError) -> [UInt8] {
        guard info.kind == .file else { throw LayerError(info.kind == .directory ? .isDirectory : .invalidArgument, "not a regular file", store: path) }
        return try content(of: event(info.contentSeq))
    }

    /// The target of a symlink version.
    public func readLink(_ info: NodeInfo) throws(LayerError) -> String {
        guard info.kind == .symlink else { throw LayerError(.invalidArgument, "not a symbolic link", store: path) }
        guard let target = try event(info.contentSeq).target else {
            throw LayerError(.corrupt, "symlink event has no target", store: path, sequence: info.contentSeq)
        }
        return target
    }

    // MARK: Blocks

    public var blocks: [BlockHeader] { state.withLock { $0.blocks } }

    /// Events not yet sealed into a block.
    public var unsealedCount: Int { state.withLock { $0.unsealed.count } }

    private func maybeScheduleSeal() {
        guard let every = policy.everyEvents else { return }
        let due = state.withLock { s -> Bool in
            guard UInt64(s.unsealed.count) >= every, !s.sealScheduled, !s.closed else { return false }
            s.sealScheduled = true
            return true
        }
        if due { sealQueue.async { [weak self] in self?.sealForEventCount(every) } }
    }

    /// The event-count trigger. The flag is cleared only after the seal, so that commits made
    /// while it runs (and still count the events it is sealing) do not schedule a second seal of
    /// the few events that arrived meanwhile; if enough did, the next seal is scheduled here.
    private func sealForEventCount(_ every: UInt64) {
        if state.withLock({ UInt64($0.unsealed.count) >= every }) { sealInBackground() }
        state.withLock { $0.sealScheduled = false }
        maybeScheduleSeal()
    }

    private func sealInBackground() {
        do throws(LayerError) { try seal() } catch {
            logger.error("background seal failed: \(error)", metadata: ["store": "\(path)"])
        }
    }

    /// Seals every event not yet in a block into a new block: appends its header to blocks.jsonl
    /// (durably) and, on btrfs, takes the read-only snapshot `.snapshots/block-<n>-<hash12>`.
    /// Returns nil when there was nothing to seal. Writers keep going meanwhile: the state lock
    /// is held only to copy the pending hashes and to record the block.
    @discardableResult
    public func seal() throws(LayerError) -> BlockHeader? {
        guard accessMode == .readWrite, let blocksFD, let groupCommit else {
            throw LayerError(.readOnly, "the store is open read-only", store: path)
        }
        return try sealLock.withLock { _ throws(LayerError) -> BlockHeader? in
            let pending = state.withLock { s -> (hashes: [Digest], first: UInt64, previous: BlockHeader?, lastTime: Timestamp, ticket: GroupCommit.Ticket)? in
                guard !s.unsealed.isEmpty, let head = s.index.head else { return nil }
                let first = s.blocks.last.map { $0.last + 1 } ?? 0
                return (s.unsealed, first, s.blocks.last, s.index.time(of: head), groupCommit.ticket(for: head))
            }
            guard let pending else { return nil }
            let last = pending.first + UInt64(pending.hashes.count) - 1
            // A block may only name durable events.
            try groupCommit.waitDurable(pending.ticket)
            var time = Timestamp.now()
            if time < pending.lastTime { time = pending.lastTime }
            if let previous = pending.previous, time < previous.time { time = previous.time }
            var header = BlockHeader(
                number: (pending.previous?.number ?? 0) + 1, first: pending.first, last: last,
                merkleRoot: MerkleTree.root(pending.hashes), previousHash: pending.previous?.hash ?? .zero, time: time)
            var line = BlockHeader.seal(&header)
            if let signer {
                do throws(LayerError) { try header.sign(with: signer, storeID: storeID) } catch { throw error.inStore(path) }
                line = header.line
            }
            let blocksPath = Store.blocksPath(path)
            let before = try FileSystem.size(blocksFD, path: blocksPath)
            do throws(LayerError) {
                try FileSystem.writeAll(blocksFD, line, path: blocksPath)
                try FileSystem.dataSync(blocksFD, path: blocksPath)
            } catch {
                try? FileSystem.truncate(blocksFD, to: before, path: blocksPath)
                throw error.inStore(path)
            }
            // The block head: only after the header is durable, so it never names a torn header.
            do throws(LayerError) {
                try FileSystem.writeFileAtomically(Store.blockHeadPath(path), HeadFile.encode(seq: header.number, hash: header.hash), durable: true)
            } catch {
                // If it was not renamed into place (ENOSPC, EIO), blocks.jsonl would stay one
                // header ahead of metadata/current_block, which, after the clean close that
                // follows, every open (verify, the next mount) reports as damage ("appended by
                // hand?"): a seal at close on a full disk left a store that could not be opened
                // for writing. Take the header back off, as when its own append fails. If it was
                // renamed (only the directory's sync failed), both files name the block: keep it.
                let named = (try? FileSystem.readFile(Store.blockHeadPath(path))).flatMap(HeadFile.decode)
                if named?.seq != header.number || named?.hash != header.hash {
                    try? FileSystem.truncate(blocksFD, to: before, path: blocksPath)
                    try? FileSystem.dataSync(blocksFD, path: blocksPath)
                    throw error.inStore(path)
                }
                logger.error("block \(header.number) sealed, but syncing metadata/ failed: \(error)", metadata: ["store": "\(path)"])
            }
            state.withLock { s in
                s.blocks.append(header)
                s.unsealed.removeFirst(pending.hashes.count)
            }
            if isBtrfsSubvolume {
                let snapshot = Store.snapshotsPath(path) + "/" + header.snapshotName
                do {
                    try FileSystem.makeDirectory(Store.snapshotsPath(path))
                    try Btrfs.createReadOnlySnapshot(of: path, at: snapshot)
                } catch {
                    logger.error("block \(header.number) sealed but its snapshot failed: \(error)", metadata: ["store": "\(path)"])
                }
            }
            logger.info("sealed block \(header.number): events \(header.first)...\(header.last)", metadata: ["store": "\(path)"])
            return header
        }
    }

    // MARK: Inclusion proofs

    /// The inclusion proof of event `seq` in its block (FORMAT.md §8.8). Throws `.outOfRange`
    /// when the event is past the head, and `.notFound` when it is not sealed in a block yet.
    public func inclusionProof(seq: UInt64) throws(LayerError) -> InclusionProof {
        let (block, eventsRange, eventRange) = try state.withLock { (s: inout State) throws(LayerError) -> (BlockHeader, (UInt64, Int), (UInt64, Int)) in
            _ = try resolve(seq, s)
            guard let block = s.blocks.last(where: { $0.first <= seq }), seq <= block.last else {
                throw LayerError(.notFound, "event \(seq) is not sealed in a block yet (layerfs seal)", store: path, sequence: seq)
            }
            let start = s.index.offset(of: block.first)
            let (lastStart, lastLength) = lineRange(block.last, s)
            return (block, (start, Int(lastStart - start) + lastLength), lineRange(seq, s))
        }
        let leaves = try blockLeaves(block, range: eventsRange)
        let index = Int(seq - block.first)
        let eventLine = try FileSystem.preadAll(logFD, count: eventRange.1, offset: eventRange.0, path: logPath)
        return InclusionProof(
            storeID: storeID, seq: seq, index: UInt64(index), size: block.count,
            path: MerkleTree.auditPath(leaves[...], index: index), eventLine: eventLine, blockLine: block.line.dropLast())
    }

    /// The event hashes of a sealed block, read from its lines (one read of the whole range) and
    /// checked against the block's Merkle root. The last block's are kept for the next proof.
    private func blockLeaves(_ block: BlockHeader, range: (UInt64, Int)) throws(LayerError) -> [Digest] {
        if let cached = leafCache.withLock({ $0 }), cached.block == block.number { return cached.leaves }
        let bytes = try FileSystem.preadAll(logFD, count: range.1, offset: range.0, path: logPath)
        var leaves: [Digest] = []
        leaves.reserveCapacity(Int(block.count))
        // Every line ends in `"hash":"<64 hex>"}`; the lines were verified when the store was opened.
        for line in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            guard line.count > 66, let digest = Digest(hex: String(decoding: line.suffix(66).prefix(64), as: UTF8.self)) else {
                throw LayerError(.corrupt, "block \(block.number): an event line changed on disk since the store was opened", store: path)
            }
            leaves.append(digest)
        }
        guard UInt64(leaves.count) == block.count, MerkleTree.root(leaves) == block.merkleRoot else {
            throw LayerError(.corrupt, "block \(block.number): its events changed on disk since the store was opened (Merkle root differs)", store: path)
        }
        leafCache.withLock { $0 = (block.number, leaves) }
        return leaves
    }

    /// The key id of the key that signs this writer's blocks, if any.
    public var signingKeyID: Digest? { signer?.publicKey.id }

    /// The store's signing setting (`metadata/signing_key`): the path of the private key, or nil
    /// when blocks are not signed.
    public static func signingKeySetting(_ store: String) throws(LayerError) -> String? {
        let file = signingKeySettingPath(store)
        guard FileSystem.exists(file) else { return nil }
        var bytes = try FileSystem.readFile(file)
        if bytes.last == UInt8(ascii: "\n") { bytes.removeLast() }
        let text = String(decoding: bytes, as: UTF8.self)
        guard text.hasPrefix("/"), !text.contains("\n") else {
            throw LayerError(.corrupt, "metadata/signing_key must hold the absolute path of a private key, one line", store: store)
        }
        return text
    }

    /// Records (or, with nil, removes) the store's signing key setting. The key is read first, so
    /// that a store is never set to sign with a key it cannot load.
    public static func setSigningKey(_ store: String, keyPath: String?) throws(LayerError) {
        let file = signingKeySettingPath(store)
        guard let keyPath else {
            if FileSystem.exists(file) {
                guard unlink(file) == 0 else { throw LayerError.system("unlink", errno: errno, path: file, store: store) }
                try FileSystem.syncDirectory(store + "/metadata")
            }
            return
        }
        guard keyPath.hasPrefix("/") else { throw LayerError(.invalidArgument, "the signing key's path must be absolute: \(keyPath)", store: store) }
        _ = try loadSigningKey(keyPath, store: store)
        try FileSystem.writeFileAtomically(file, Array((keyPath + "\n").utf8), durable: true, mode: 0o644)
    }

    /// The key named by the store's setting; nil when there is none. Throws when it is set but the
    /// key cannot be used: a writer must not go on sealing unsigned blocks behind the operator's back.
    static func configuredSigningKey(_ store: String) throws(LayerError) -> Ed25519.PrivateKey? {
        guard let keyPath = try signingKeySetting(store) else { return nil }
        return try loadSigningKey(keyPath, store: store)
    }

    static func loadSigningKey(_ keyPath: String, store: String) throws(LayerError) -> Ed25519.PrivateKey {
        var st = Glibc.stat()
        let fd = Glibc.open(keyPath, O_RDONLY | O_CLOEXEC)
        defer { if fd >= 0 { Glibc.close(fd) } }
        if fd >= 0, fstat(fd, &st) == 0, st.st_mode & 0o077 != 0 {
            throw LayerError(
                .permission, "the signing key \(keyPath) is readable by others (mode \(String(st.st_mode & 0o777, radix: 8))): chmod 600 it",
                store: store, path: keyPath)
        }
        do throws(LayerError) { return try Ed25519.PrivateKey(contentsOf: keyPath) } catch {
            throw LayerError(error.code, "blocks are to be signed with \(keyPath) (metadata/signing_key), but: \(error.message)", store: store, path: keyPath, errno: error.errno)
        }
    }

    /// Group-commit figures: (events durable, fdatasync calls).
    public var syncStatistics: (durable: UInt64, syncs: UInt64) { groupCommit?.stats ?? (headSequence, 0) }
}
