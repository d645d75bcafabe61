#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Logging

/// A replica: a directory on btrfs holding the block snapshots received from one store
/// (docs/FORMAT.md §12.3, docs/OPERATIONS.md "Replicas").
///
///     <replica>/layerfs-replica       "layerfs-replica/1 <store id>" LF: which store, written once
///     <replica>/current_block         the last accepted block: as metadata/current_block (§8.5)
///     <replica>/blocks/block-<n>-<h>  the received read-only snapshots, named as on the primary
///     <replica>/receive.lock          flock(2): one `layerfs receive` at a time
///
/// A block is *accepted* when `current_block` names it, which happens only after its snapshot was
/// received and verified. A snapshot in `blocks/` past `current_block` is an interrupted or
/// refused receive; the next receive deletes it. Received snapshots cannot be renamed (btrfs
/// refuses to move a read-only subvolume), which is why acceptance is a file and not a move.
///
/// Readers open the accepted head snapshot as a sealed-only store: the replica's history is
/// exactly its blocks, never the unsealed events a snapshot may also hold.
public enum Replica {
    public static let format = "layerfs-replica/1"

    static func markerPath(_ replica: String) -> String { replica + "/layerfs-replica" }
    static func headPath(_ replica: String) -> String { replica + "/current_block" }
    public static func blocksPath(_ replica: String) -> String { replica + "/blocks" }
    static func lockPath(_ replica: String) -> String { replica + "/receive.lock" }

    /// What a replica holds.
    public struct Head: Equatable, Sendable {
        public var storeID: String
        /// The last accepted block, nil when none has been accepted yet.
        public var block: UInt64?
        public var hash: Digest?

        public var snapshotName: String? {
            guard let block, let hash else { return nil }
            return "block-\(block)-\(hash.hex.prefix(12))"
        }
    }

    /// Whether `path` is a replica directory (it has the marker file).
    public static func isReplica(_ path: String) -> Bool { FileSystem.exists(markerPath(path)) }

    /// The replica's head; nil for a directory that has never accepted a stream.
    public static func head(_ replica: String) throws(LayerError) -> Head? {
        guard FileSystem.exists(markerPath(replica)) else { return nil }
        let marker = try FileSystem.readFile(markerPath(replica))
        let prefix = Array((format + " ").utf8)
        guard marker.count == prefix.count + 37, marker.starts(with: prefix), marker.last == UInt8(ascii: "\n"),
            let id = String(validating: marker[prefix.count..<(marker.count - 1)], as: UTF8.self),
            ReplicationStream.isStoreID(id)
        else {
            throw LayerError(.corrupt, "layerfs-replica is not `\(format) <store id>`", path: markerPath(replica))
        }
        guard FileSystem.exists(headPath(replica)) else { return Head(storeID: id) }
        guard let named = HeadFile.decode(try FileSystem.readFile(headPath(replica))) else {
            throw LayerError(.corrupt, "current_block is malformed", path: headPath(replica))
        }
        return Head(storeID: id, block: named.seq, hash: named.hash)
    }

    /// The path of the accepted head snapshot, checked to be a read-only subvolume.
    public static func headSnapshot(_ replica: String) throws(LayerError) -> (head: Head, path: String) {
        guard let head = try head(replica) else {
            throw LayerError(.notFound, "not a layerfs replica (no layerfs-replica file); fill one with `layerfs receive`", path: replica)
        }
        guard let name = head.snapshotName else {
            throw LayerError(.notFound, "the replica has not accepted a block yet", path: replica)
        }
        let path = blocksPath(replica) + "/" + name
        guard FileSystem.exists(path) else {
            throw LayerError(.corrupt, "current_block names block \(head.block!), but blocks/\(name) is missing", path: replica)
        }
        if (try? Btrfs.isSubvolume(path)) != true || (try? Btrfs.isReadOnly(path)) != true {
            throw LayerError(.corrupt, "blocks/\(name) is not a read-only btrfs subvolume", path: replica)
        }
        return (head, path)
    }

    /// Opens what the replica holds as a read-only store: its accepted head snapshot, as of that
    /// block (the whole chain is verified, as any open does).
    public static func open(_ replica: String, options: Store.Options = Store.Options()) throws(LayerError) -> Store {
        let (head, path) = try headSnapshot(replica)
        var options = options
        options.sealedOnly = true
        let store: Store
        do throws(LayerError) { store = try Store(path: path, mode: .readOnly, options: options) } catch {
            throw LayerError(error.code, "replica \(replica), block \(head.block!): \(error.message)", path: error.path, sequence: error.sequence)
        }
        guard store.storeID == head.storeID, store.blocks.last?.number == head.block, store.blocks.last?.hash == head.hash else {
            throw LayerError(.corrupt, "blocks/\(head.snapshotName!) does not hold the block current_block names", path: replica)
        }
        return store
    }

    // MARK: Receiving

    public struct ReceiveOptions: Sendable {
        public var logger: Logger
        /// Called as bytes of a block arrive: (block, bytes of this block so far).
        public var progress: (@Sendable (UInt64, UInt64) -> Void)?
        /// Called when a block is accepted (or found already held: `skipped`).
        public var accepted: (@Sendable (BlockHeader, _ skipped: Bool) -> Void)?

        /// When not empty, every new block must be signed by one of these keys (as a block of the
        /// stream's store), or it is refused before any of its data is applied.
        public var trustedKeys: [Ed25519.PublicKey] = []

        public init(logger: Logger = Logger(label: "layerfs.replica")) { self.logger = logger }
    }

    public struct ReceiveReport: Sendable {
        public var storeID: String
        public var accepted: [BlockHeader] = []
        public var skipped: [UInt64] = []
        public var head: Head?
    }

    /// Applies a `layerfs-stream/1` stream read from `input` to the replica at `replica` (created
    /// if missing; it must be on btrfs). Every block is checked before it is received (it must
    /// extend the replica's chain) and its snapshot is verified before it is accepted; the first
    /// block that fails stops the receive, and its snapshot is deleted. Blocks accepted before it
    /// stay accepted, so an interrupted stream is resumed by sending from the next block.
    public static func receive(into replica: String, from input: Int32, options: ReceiveOptions = ReceiveOptions()) throws(LayerError) -> ReceiveReport {
        try prepareDirectory(replica)
        let lock = try FileSystem.open(lockPath(replica), O_RDWR | O_CREAT | O_CLOEXEC, mode: 0o600)
        defer { FileSystem.close(lock) }
        guard flock(lock, LOCK_EX | LOCK_NB) == 0 else {
            if errno == EWOULDBLOCK {
                throw LayerError(.locked, "another `layerfs receive` is writing to this replica", path: replica)
            }
            throw LayerError.system("flock", errno: errno, path: lockPath(replica))
        }
        guard let btrfs = Subprocess.find("btrfs") else {
            throw LayerError(.unsupported, "btrfs (btrfs-progs) is not installed: it applies the snapshot streams", path: replica)
        }
        var head = try head(replica)
        try removeUnaccepted(replica, head: head, logger: options.logger)

        // The replica's own chain: the headers in its head snapshot.
        var chain: [BlockHeader] = []
        if head?.block != nil {
            let (h, path) = try headSnapshot(replica)
            let (blocks, _) = try Store.readBlocks(path)
            guard blocks.count == h.block!, blocks.last?.hash == h.hash else {
                throw LayerError(.corrupt, "blocks/\(h.snapshotName!) does not hold the block current_block names", path: replica)
            }
            chain = blocks
        }

        let stream = StreamInput(fd: input)
        if try stream.atEnd() {
            throw LayerError(.io, "the stream is empty (did `layerfs send` fail? its message says why)", path: replica)
        }
        let magic = try stream.read(exactly: ReplicationStream.magic.count, what: "the stream's first line")
        guard magic == ReplicationStream.magic else {
            throw LayerError(.corrupt, "not a layerfs stream: it does not begin with `layerfs-stream/1`", path: replica)
        }
        guard let header = ReplicationStream.decodeHeader(try stream.line(what: "the stream header")) else {
            throw LayerError(.corrupt, "the stream header is damaged", path: replica)
        }
        if let pinned = head?.storeID, pinned != header.store {
            throw LayerError(.corrupt, "the stream is of store \(header.store), but this replica holds store \(pinned)", path: replica)
        }
        let held = UInt64(chain.count)
        let sendFrom = "layerfs send STORE --from \(held + 1)"
        if header.base != 0 {
            guard held > 0 else {
                throw LayerError(
                    .outOfRange,
                    "the replica is empty, and the stream's first block, \(header.first), is an increment on block \(header.base): send from block 1 (layerfs send STORE --from 1)",
                    path: replica)
            }
            guard header.base <= held else {
                throw LayerError(
                    .outOfRange,
                    "the replica holds blocks 1...\(held), and the stream's first block, \(header.first), is an increment on block \(header.base), which the replica does not have: send from block \(held + 1) (\(sendFrom))",
                    path: replica)
            }
            guard chain[Int(header.base - 1)].hash == header.baseHash else {
                throw LayerError(
                    .corrupt,
                    "fork: the stream builds on a block \(header.base) with hash \(header.baseHash.hex), but the replica's block \(header.base) has hash \(chain[Int(header.base - 1)].hash.hex)",
                    path: replica)
            }
        }
        var report = ReceiveReport(storeID: header.store)
        if header.last >= header.first {
            for n in header.first...header.last {
                let line = try stream.line(what: "the header of block \(n)")
                guard case .success(let block) = BlockHeader.decode(line: line) else {
                    throw LayerError(.corrupt, "the stream's header of block \(n) is damaged", path: replica)
                }
                guard block.number == n else {
                    throw LayerError(.corrupt, "the stream holds block \(block.number) where block \(n) belongs", path: replica)
                }
                if n <= held {
                    // Already held: the same block, or the stream is from a fork.
                    guard chain[Int(n - 1)] == block else {
                        throw LayerError(
                            .corrupt,
                            "fork: the stream's block \(n) has hash \(block.hash.hex), but the replica's block \(n) has hash \(chain[Int(n - 1)].hash.hex)",
                            path: replica)
                    }
                    _ = try pump(stream, into: nil, block: n, replica: replica, progress: options.progress)
                    report.skipped.append(n)
                    options.accepted?(block, true)
                    continue
                }
                if !options.trustedKeys.isEmpty {
                    let check = block.signatureCheck(trusting: options.trustedKeys, storeID: header.store)
                    guard case .valid = check else {
                        throw LayerError(.corrupt, "block \(n) is \(check): refused (receive --pubkey)", path: replica)
                    }
                }
                if let tip = chain.last, tip.number == n - 1, block.previousHash != tip.hash {
                    throw LayerError(
                        .corrupt,
                        "fork: the stream's block \(n) follows a block \(n - 1) with hash \(block.previousHash.hex), but the replica's block \(n - 1) has hash \(tip.hash.hex)",
                        path: replica)
                }
                let accepted = try receiveBlock(
                    block, from: stream, btrfs: btrfs, replica: replica, storeID: header.store, chain: chain,
                    options: options)
                chain = accepted
                if head == nil {
                    try FileSystem.writeFileAtomically(
                        markerPath(replica), Array("\(format) \(header.store)\n".utf8), durable: true)
                }
                try FileSystem.writeFileAtomically(headPath(replica), HeadFile.encode(seq: block.number, hash: block.hash), durable: true)
                head = Head(storeID: header.store, block: block.number, hash: block.hash)
                report.accepted.append(block)
                options.accepted?(block, false)
                options.logger.info("accepted block \(n): events \(block.first)...\(block.last)", metadata: ["replica": "\(replica)"])
            }
        }
        guard let count = ReplicationStream.decodeEnd(try stream.line(what: "the end of the stream")), count == header.blockCount else {
            throw LayerError(.corrupt, "the stream's end record is damaged", path: replica)
        }
        guard try stream.atEnd() else {
            throw LayerError(.corrupt, "bytes follow the end of the stream", path: replica)
        }
        report.head = head
        return report
    }

    /// Creates the replica directory and blocks/ (mode 0700: a replica holds the whole history).
    static func prepareDirectory(_ replica: String) throws(LayerError) {
        if !FileSystem.exists(replica) {
            guard FileSystem.isDirectory(StorePath.parent(ofFilesystemPath: replica)) else {
                throw LayerError(.notFound, "the directory above the replica does not exist", path: replica)
            }
            try FileSystem.makeDirectory(replica, mode: 0o700)
        }
        guard FileSystem.isDirectory(replica) else { throw LayerError(.notDirectory, "the replica must be a directory", path: replica) }
        guard try Btrfs.isBtrfs(replica) else {
            throw LayerError(.unsupported, "a replica must be on btrfs (it receives btrfs snapshots)", path: replica)
        }
        if !FileSystem.exists(blocksPath(replica)) { try FileSystem.makeDirectory(blocksPath(replica), mode: 0o700) }
    }

    /// Deletes snapshots in blocks/ that were never accepted: an interrupted or refused receive.
    static func removeUnaccepted(_ replica: String, head: Head?, logger: Logger) throws(LayerError) {
        for name in try FileSystem.listDirectory(blocksPath(replica)) {
            guard let number = blockNumber(ofSnapshot: name) else { continue }
            let accepted = head?.block.map { number < $0 || (number == $0 && name == head?.snapshotName) } ?? false
            if !accepted {
                try deleteSnapshot(blocksPath(replica) + "/" + name)
                logger.notice("removed blocks/\(name): received but never accepted (an interrupted receive?)", metadata: ["replica": "\(replica)"])
            }
        }
    }

    static func blockNumber(ofSnapshot name: String) -> UInt64? {
        let parts = name.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "block", let n = UInt64(parts[1]), parts[2].utf8.count == 12 else { return nil }
        return n
    }

    static func deleteSnapshot(_ path: String) throws(LayerError) {
        if (try? Btrfs.isSubvolume(path)) == true {
            try Btrfs.deleteSubvolume(at: path)
        } else {
            throw LayerError(.busy, "not a subvolume; remove it by hand", path: path)
        }
    }

    /// Receives one block's btrfs stream into blocks/, checks it and returns the new chain of
    /// headers. On any failure the received snapshot is deleted.
    private static func receiveBlock(
        _ block: BlockHeader, from stream: StreamInput, btrfs: String, replica: String, storeID: String,
        chain: [BlockHeader], options: ReceiveOptions
    ) throws(LayerError) -> [BlockHeader] {
        let directory = blocksPath(replica)
        let before = Set(try FileSystem.listDirectory(directory))
        let errors = try TemporaryFile()
        let child = try Subprocess(
            btrfs, ["receive", "-E", "1", directory], stdin: .pipe, stdout: .descriptor(errors.fd), stderr: .descriptor(errors.fd))
        func cleanUp() {
            let after = (try? FileSystem.listDirectory(directory)) ?? []
            for name in after where !before.contains(name) {
                do throws(LayerError) { try deleteSnapshot(directory + "/" + name) } catch {
                    options.logger.error("could not delete the refused snapshot: \(error)", metadata: ["replica": "\(replica)"])
                }
            }
        }
        let trailerMatches: Bool
        do throws(LayerError) {
            trailerMatches = try pump(stream, into: child, block: block.number, replica: replica, progress: options.progress)
        } catch {
            child.kill()
            _ = try? child.wait()
            cleanUp()
            throw error
        }
        child.closeInput()
        let status = try child.wait()
        guard trailerMatches else {
            cleanUp()
            throw LayerError(.corrupt, "block \(block.number)'s btrfs data does not match the stream's checksum (damaged or altered in transit)", path: replica)
        }
        guard status == 0 else {
            cleanUp()
            let message = errors.contents().split(separator: "\n").suffix(3).joined(separator: "; ")
            throw LayerError(.io, "btrfs receive of block \(block.number) failed (exit status \(status)): \(message)", path: replica)
        }
        let made = Set(try FileSystem.listDirectory(directory)).subtracting(before)
        guard made == [block.snapshotName] else {
            cleanUp()
            throw LayerError(
                .corrupt, "the stream for block \(block.number) made \(made.sorted().joined(separator: ", ")), not \(block.snapshotName)",
                path: replica)
        }
        let path = directory + "/" + block.snapshotName
        do throws(LayerError) {
            guard try Btrfs.isSubvolume(path), try Btrfs.isReadOnly(path) else {
                throw LayerError(.corrupt, "the received snapshot is not a read-only subvolume", path: path)
            }
            var storeOptions = Store.Options(logger: options.logger)
            storeOptions.sealedOnly = true
            let store: Store
            do throws(LayerError) { store = try Store(path: path, mode: .readOnly, options: storeOptions) } catch {
                throw LayerError(.corrupt, "block \(block.number) failed verification: \(error.message)", path: replica, sequence: error.sequence)
            }
            let blocks = store.blocks
            guard store.storeID == storeID else {
                throw LayerError(.corrupt, "block \(block.number)'s snapshot is of store \(store.storeID), not \(storeID)", path: replica)
            }
            guard blocks.count == Int(block.number), blocks.last == block else {
                throw LayerError(.corrupt, "block \(block.number)'s snapshot does not hold the header the stream announced", path: replica)
            }
            if let tip = chain.last, blocks[Int(tip.number - 1)] != tip {
                throw LayerError(
                    .corrupt, "fork: block \(block.number)'s snapshot has a block \(tip.number) other than the replica's (\(blocks[Int(tip.number - 1)].hash.hex))",
                    path: replica)
            }
            return blocks
        } catch {
            cleanUp()
            throw error
        }
    }

    /// Copies one block's chunks into `child`'s standard input (or discards them), then reads the
    /// trailer. Returns whether the trailer's length and SHA-256 match what was read. When the
    /// child stops reading (it failed), the rest is read and discarded so that the stream stays in
    /// step; the child's exit status then tells what happened.
    private static func pump(
        _ stream: StreamInput, into child: Subprocess?, block: UInt64, replica: String,
        progress: (@Sendable (UInt64, UInt64) -> Void)?
    ) throws(LayerError) -> Bool {
        let hasher = SHA256.Hasher()
        var bytes: UInt64 = 0
        var childAlive = child != nil
        while true {
            let frame = try stream.read(exactly: 4, what: "block \(block)'s data")
            let length = Int(frame[0]) << 24 | Int(frame[1]) << 16 | Int(frame[2]) << 8 | Int(frame[3])
            if length == 0 { break }
            guard length <= ReplicationStream.maximumChunk else {
                throw LayerError(.corrupt, "block \(block)'s data has a chunk of \(length) bytes (at most \(ReplicationStream.maximumChunk))", path: replica)
            }
            let chunk = try stream.read(exactly: length, what: "block \(block)'s data")
            chunk.withUnsafeBytes { hasher.update($0) }
            bytes += UInt64(length)
            if childAlive, let child {
                do throws(LayerError) { try FileSystem.writeAll(child.input, chunk, path: "btrfs receive") } catch {
                    childAlive = false  // EPIPE: it stopped; its exit status says why
                }
            }
            progress?(block, bytes)
        }
        guard let trailer = ReplicationStream.decodeTrailer(try stream.line(what: "block \(block)'s trailer")) else {
            throw LayerError(.corrupt, "block \(block)'s trailer is damaged", path: replica)
        }
        return trailer.bytes == bytes && trailer.sha256 == hasher.finalize()
    }
}

/// Buffered reading of a stream from a descriptor, with a clear error for an early end.
final class StreamInput {
    let fd: Int32
    private var buffer = [UInt8]()
    private var start = 0
    private var eof = false

    init(fd: Int32) { self.fd = fd }

    /// Drops consumed bytes once they are many (indices into `buffer` change: call between reads).
    private func compact() {
        if start > 0 && (start == buffer.count || start > 1 << 22) { buffer.removeFirst(start); start = 0 }
    }

    private func fill() throws(LayerError) -> Bool {
        guard !eof else { return false }
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        let (n, e) = chunk.withUnsafeMutableBytes { raw in FileSystem.retrying { Glibc.read(fd, raw.baseAddress, raw.count) } }
        if n < 0 { throw LayerError.system("read", errno: e, path: "the input stream") }
        if n == 0 { eof = true; return false }
        buffer.append(contentsOf: chunk[0..<n])
        return true
    }

    func read(exactly count: Int, what: String) throws(LayerError) -> [UInt8] {
        compact()
        while buffer.count - start < count {
            guard try fill() else {
                throw LayerError(.io, "the stream ended early, in \(what) (interrupted?)", path: "the input stream", errno: EPIPE)
            }
        }
        let out = Array(buffer[start..<(start + count)])
        start += count
        return out
    }

    /// One LF-terminated line (without the LF), at most `ReplicationStream.maximumLineLength` bytes.
    func line(what: String) throws(LayerError) -> [UInt8] {
        compact()
        var scanned = start
        while true {
            if let newline = buffer[scanned...].firstIndex(of: UInt8(ascii: "\n")) {
                let out = Array(buffer[start..<newline])
                start = newline + 1
                return out
            }
            scanned = buffer.count
            guard buffer.count - start <= ReplicationStream.maximumLineLength else {
                throw LayerError(.corrupt, "\(what) is not a line of at most \(ReplicationStream.maximumLineLength) bytes", path: "the input stream")
            }
            guard try fill() else {
                throw LayerError(.io, "the stream ended early, in \(what) (interrupted?)", path: "the input stream", errno: EPIPE)
            }
        }
    }

    func atEnd() throws(LayerError) -> Bool {
        compact()
        if buffer.count > start { return false }
        return !(try fill())
    }
}

/// An unnamed temporary file (unlinked at once), for a child's messages.
final class TemporaryFile {
    let fd: Int32

    init() throws(LayerError) {
        var template = Array("/tmp/layerfs-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw LayerError.system("mkstemp", errno: errno, path: "/tmp") }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        self.fd = fd
    }

    deinit { Glibc.close(fd) }

    func contents() -> String {
        guard let size = try? FileSystem.size(fd, path: "a temporary file"), size > 0,
            let bytes = try? FileSystem.preadAll(fd, count: Int(min(size, 1 << 16)), offset: 0, path: "a temporary file")
        else { return "" }
        return String(decoding: bytes, as: UTF8.self).trimmingSuffixNewlines()
    }
}

extension String {
    fileprivate func trimmingSuffixNewlines() -> String {
        var s = self
        while s.hasSuffix("\n") { s.removeLast() }
        return s
    }
}
