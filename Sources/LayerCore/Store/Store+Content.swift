#if canImport(Glibc)
import Glibc
#endif

/// The content of one file version, opened for ranged reads (FUSE `read`), so that a large blob is
/// never loaded whole.
///
/// - Inline content (in the event's line) is decoded once, at open, and held in memory.
/// - A blob is opened once (`O_RDONLY | O_CLOEXEC`) and read with `pread`; the descriptor is
///   closed when the last reference goes away.
///
/// **Verification.** At open, the blob must exist and be exactly as long as its event says, else
/// `.corrupt`. Ranged reads do **not** check the blob's SHA-256: that needs every byte, on every
/// read. The hash of every blob is checked when a store is opened and by `layerfs verify`, and the
/// whole-content `Store.read(_:)` still checks it on every call. So a blob rewritten in place with
/// the same length after the store was opened is served as it is now by ranged reads, until the
/// next open or verify reports it.
///
/// Safe to use from any thread: the state is immutable and `pread` does not move a file offset.
public final class FileContent: Sendable {
    /// The content's length in bytes.
    public let size: UInt64
    /// The event whose line holds (or names) the content.
    public let contentSeq: UInt64

    private enum Source: Sendable {
        case inline([UInt8])
        case blob(fd: Int32, path: String)
    }

    private let source: Source
    /// The store's directory, for error messages.
    private let store: String

    fileprivate init(inline bytes: [UInt8], contentSeq: UInt64, store: String) {
        self.size = UInt64(bytes.count)
        self.contentSeq = contentSeq
        self.source = .inline(bytes)
        self.store = store
    }

    fileprivate init(blob fd: Int32, path: String, size: UInt64, contentSeq: UInt64, store: String) {
        self.size = size
        self.contentSeq = contentSeq
        self.source = .blob(fd: fd, path: path)
        self.store = store
    }

    deinit {
        if case .blob(let fd, _) = source { FileSystem.close(fd) }
    }

    /// Up to `count` bytes from `offset`: fewer at the end of the content, none at or past it.
    public func read(offset: UInt64, count: Int) throws(LayerError) -> [UInt8] {
        guard count >= 0 else {
            throw LayerError(.invalidArgument, "negative read count \(count)", store: store, sequence: contentSeq, errno: EINVAL)
        }
        let n = Self.available(size: size, offset: offset, count: count)
        if n == 0 { return [] }
        if case .inline(let bytes) = source {
            let start = Int(offset)
            return Array(bytes[start..<start + n])
        }
        var failure: LayerError?
        let out = [UInt8](unsafeUninitializedCapacity: n) { buffer, initialized in
            do throws(LayerError) {
                initialized = try read(offset: offset, into: UnsafeMutableRawBufferPointer(buffer))
            } catch {
                failure = error
                initialized = 0
            }
        }
        if let failure { throw failure }
        return out
    }

    /// Reads up to `buffer.count` bytes from `offset` into `buffer` and returns how many it read:
    /// fewer at the end of the content, 0 at or past it.
    public func read(offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(LayerError) -> Int {
        let n = Self.available(size: size, offset: offset, count: buffer.count)
        if n == 0 { return 0 }
        switch source {
        case .inline(let bytes):
            bytes.withUnsafeBytes { content in
                buffer.baseAddress!.copyMemory(from: content.baseAddress! + Int(offset), byteCount: n)
            }
            return n
        case .blob(let fd, let path):
            var done = 0
            while done < n {
                let (r, e) = FileSystem.retrying {
                    Glibc.pread(fd, buffer.baseAddress! + done, n - done, off_t(offset) + off_t(done))
                }
                if r < 0 {
                    var error = LayerError.system("pread", errno: e, path: path, store: store)
                    error.sequence = contentSeq
                    throw error
                }
                if r == 0 {
                    throw LayerError(
                        .corrupt, "blob ended at byte \(offset + UInt64(done)), its event says \(size) bytes (changed since it was opened?)",
                        store: store, path: path, sequence: contentSeq, errno: EIO)
                }
                done += r
            }
            return n
        }
    }

    /// How many bytes a read of `count` at `offset` returns.
    private static func available(size: UInt64, offset: UInt64, count: Int) -> Int {
        guard offset < size, count > 0 else { return 0 }
        return Int(min(UInt64(count), size - offset))
    }
}

extension Store {
    /// Opens a file version's content for ranged reads (see `FileContent`, also for what is and
    /// is not verified). Reads and checks the event's line; for a blob, opens it and checks that
    /// it exists and has exactly the event's size (`.corrupt`, naming the blob, otherwise).
    public func openContent(_ info: NodeInfo) throws(LayerError) -> FileContent {
        guard info.kind == .file else {
            throw LayerError(info.kind == .directory ? .isDirectory : .invalidArgument, "not a regular file", store: path)
        }
        let seq = info.contentSeq
        let event = try event(seq)
        guard let size = event.size, let content = event.content else {
            throw LayerError(.corrupt, "a \(event.operation.rawValue) event without content", store: path, sequence: seq)
        }
        guard size == info.size else {
            throw LayerError(.corrupt, "the event says \(size) bytes, the index \(info.size) (log changed on disk?)", store: path, sequence: seq)
        }
        switch content {
        case .inline(let bytes):
            guard UInt64(bytes.count) == size else {
                throw LayerError(.corrupt, "inline content has \(bytes.count) bytes, the event says \(size)", store: path, sequence: seq)
            }
            return FileContent(inline: bytes, contentSeq: seq, store: path)
        case .object(let digest):
            let blob = objects.path(of: digest)
            let fd: Int32
            do throws(LayerError) {
                fd = try FileSystem.open(blob, O_RDONLY | O_CLOEXEC)
            } catch {
                if error.errno == ENOENT || error.errno == ENOTDIR {
                    throw LayerError(.corrupt, "blob \(digest.hex) is missing", store: path, path: blob, sequence: seq)
                }
                var failure = error.inStore(path)
                failure.sequence = seq
                throw failure
            }
            var st = Glibc.stat()
            guard fstat(fd, &st) == 0 else {
                let e = errno
                FileSystem.close(fd)
                var failure = LayerError.system("fstat", errno: e, path: blob, store: path)
                failure.sequence = seq
                throw failure
            }
            guard st.st_mode & S_IFMT == S_IFREG else {
                FileSystem.close(fd)
                throw LayerError(.corrupt, "blob \(digest.hex) is not a regular file", store: path, path: blob, sequence: seq)
            }
            guard UInt64(st.st_size) == size else {
                FileSystem.close(fd)
                throw LayerError(
                    .corrupt, "blob \(digest.hex) has \(st.st_size) bytes, the event says \(size)", store: path, path: blob, sequence: seq)
            }
            return FileContent(blob: fd, path: blob, size: size, contentSeq: seq, store: path)
        }
    }

    /// For each distinct event time, the last event at that time, in time order (the entries of
    /// `/@time`). One pass over the index's event times under the state lock: times never
    /// decrease along the log, so an event is the last at its time exactly when the next event's
    /// time differs (or it is the head).
    public func distinctEventTimes() -> [(seq: UInt64, time: Timestamp)] {
        state.withLock { $0.index.distinctTimes() }
    }
}

extension StateIndex {
    /// See `Store.distinctEventTimes()`.
    func distinctTimes() -> [(seq: UInt64, time: Timestamp)] {
        times.withUnsafeBufferPointer { times in
            var out: [(seq: UInt64, time: Timestamp)] = []
            guard let last = times.indices.last else { return out }
            for i in 0..<last where times[i] != times[i + 1] {
                out.append((UInt64(i), Timestamp(nanoseconds: times[i])))
            }
            out.append((UInt64(last), Timestamp(nanoseconds: times[last])))
            return out
        }
    }
}
