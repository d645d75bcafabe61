#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// `layerfs send`: writes the block snapshots of a btrfs store as a `layerfs-stream/1` stream
/// (FORMAT.md §12). Each block's snapshot goes through `btrfs send`, in full for the first block
/// of the stream when it is block 1 (or when asked), else as an increment on the previous block's
/// snapshot (`btrfs send -p`).
public enum ReplicationSender {
    public struct Progress: Sendable {
        public var block: UInt64
        public var first: UInt64
        public var last: UInt64
        /// Bytes of `btrfs send` output written for this block so far, and for the whole stream.
        public var blockBytes: UInt64
        public var totalBytes: UInt64
    }

    /// Checks the range and the snapshots; returns the stream header. `to` defaults to the last
    /// block. A range that starts after the last block gives a stream with no blocks (the receiver
    /// then only checks that it holds the same last block).
    public static func plan(store: Store, from: UInt64, to: UInt64?, full: Bool) throws(LayerError) -> ReplicationStream.Header {
        let blocks = store.blocks
        guard let lastBlock = blocks.last else {
            throw LayerError(.notFound, "no sealed blocks to send: seal one first (layerfs seal)", store: store.path)
        }
        guard store.isBtrfsSubvolume else {
            throw LayerError(
                .unsupported, "the store is not a btrfs subvolume, so its blocks have no snapshots to send", store: store.path)
        }
        guard from >= 1 else { throw LayerError(.invalidArgument, "blocks count from 1 (--from 0)", store: store.path) }
        let last = to ?? lastBlock.number
        guard last <= lastBlock.number else {
            throw LayerError(.outOfRange, "block \(last) does not exist: the last block is \(lastBlock.number)", store: store.path)
        }
        guard from <= lastBlock.number + 1 else {
            throw LayerError(.outOfRange, "block \(from) does not exist: the last block is \(lastBlock.number)", store: store.path)
        }
        guard from <= last + 1 else {
            throw LayerError(.invalidArgument, "--from \(from) is after --to \(last)", store: store.path)
        }
        if from > last && (full || from == 1) {
            throw LayerError(.invalidArgument, "a stream sent in full needs at least one block", store: store.path)
        }
        let incremental = from > 1 && !full
        for n in (incremental ? from - 1 : from)...max(last, from - 1) where n >= 1 {
            let snapshot = store.snapshotPath(of: blocks[Int(n - 1)])
            guard FileSystem.exists(snapshot), (try? Btrfs.isSubvolume(snapshot)) == true, (try? Btrfs.isReadOnly(snapshot)) == true else {
                throw LayerError(
                    .notFound, "block \(n) has no read-only snapshot at \(snapshot) (layerfs verify lists missing snapshots)",
                    store: store.path)
            }
        }
        return ReplicationStream.Header(
            store: store.storeID, first: from, last: last, base: incremental ? from - 1 : 0,
            baseHash: incremental ? blocks[Int(from - 2)].hash : .zero)
    }

    /// Writes the stream described by `header` to `output`. The store stays usable meanwhile
    /// (a mount may keep writing; only sealed, read-only snapshots are read).
    public static func send(
        store: Store, header: ReplicationStream.Header, to output: Int32,
        progress: ((Progress) -> Void)? = nil
    ) throws(LayerError) {
        guard let btrfs = Subprocess.find("btrfs") else {
            throw LayerError(.unsupported, "btrfs (btrfs-progs) is not installed: it writes the snapshot streams", store: store.path)
        }
        let blocks = store.blocks
        let outputName = "the output stream"
        try FileSystem.writeAll(output, ReplicationStream.magic + ReplicationStream.encode(header), path: outputName)
        var total: UInt64 = 0
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        if header.last >= header.first {
            for n in header.first...header.last {
                let block = blocks[Int(n - 1)]
                let snapshot = store.snapshotPath(of: block)
                var arguments = ["send", "-q"]
                if n > header.first || header.base != 0 {
                    arguments += ["-p", store.snapshotPath(of: blocks[Int(n - 2)])]
                }
                arguments.append(snapshot)
                // btrfs send's own messages (errors) go to our standard error.
                let child = try Subprocess(btrfs, arguments, stdin: .null, stdout: .pipe, stderr: .descriptor(2))
                // The header line, re-encoded: canonical, so equal to the blocks.jsonl line.
                var check = block
                _ = BlockHeader.seal(&check)
                guard check.hash == block.hash else {
                    throw LayerError(.corrupt, "block \(n)'s header does not re-encode to its own hash", store: store.path)
                }
                try FileSystem.writeAll(output, block.line, path: outputName)
                let hasher = SHA256.Hasher()
                var bytes: UInt64 = 0
                while true {
                    let count = buffer.withUnsafeMutableBytes { raw in
                        FileSystem.retrying { read(child.output, raw.baseAddress, raw.count) }
                    }
                    if count.0 < 0 { throw LayerError.system("read from btrfs send", errno: count.1, store: store.path) }
                    if count.0 == 0 { break }
                    let n = count.0
                    var frame = [UInt8](repeating: 0, count: 4)
                    frame[0] = UInt8(truncatingIfNeeded: n >> 24); frame[1] = UInt8(truncatingIfNeeded: n >> 16)
                    frame[2] = UInt8(truncatingIfNeeded: n >> 8); frame[3] = UInt8(truncatingIfNeeded: n)
                    try FileSystem.writeAll(output, frame, path: outputName)
                    let chunk = Array(buffer[0..<n])
                    chunk.withUnsafeBytes { hasher.update($0) }
                    try FileSystem.writeAll(output, chunk, path: outputName)
                    bytes += UInt64(n)
                    total += UInt64(n)
                    progress?(Progress(block: block.number, first: header.first, last: header.last, blockBytes: bytes, totalBytes: total))
                }
                let status = try child.wait()
                guard status == 0 else {
                    throw LayerError(.io, "`\(child.commandLine)` failed with exit status \(status) (its message is above)", store: store.path)
                }
                try FileSystem.writeAll(output, [0, 0, 0, 0], path: outputName)
                try FileSystem.writeAll(output, ReplicationStream.encode(ReplicationStream.Trailer(bytes: bytes, sha256: hasher.finalize())), path: outputName)
            }
        }
        try FileSystem.writeAll(output, ReplicationStream.encodeEnd(blocks: header.blockCount), path: outputName)
    }
}
