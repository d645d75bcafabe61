#if canImport(Glibc)
import Glibc
#endif

/// The content of a large file being written, kept in a temporary file of the store
/// (`metadata/staging/`) instead of memory: a writer's data goes to the page cache as it arrives
/// (and the kernel starts writing it back), and a commit clones it into a blob
/// (`Store.commit(.writeStaged(...))`) without reading it through this process on btrfs.
///
/// The staging file stays the writer's working copy after a commit (a commit clones it), so the
/// file can be written again and committed again. It is removed when this object goes.
///
/// A running SHA-256 follows the data while it is written front to back (the usual case), so a
/// commit needs no second pass to name the blob; any other write (an overwrite, a hole, a
/// truncate) drops it and the commit hashes the file instead.
///
/// Not thread-safe: the owner serializes calls (LayerFS's open file does, under its lock).
public final class StagedContent: @unchecked Sendable, Hashable {
    let fd: Int32
    let path: String
    public private(set) var size: UInt64 = 0
    /// The hash of bytes 0..<size while the file has only been appended to; nil otherwise.
    private var hasher: SHA256.Hasher? = SHA256.Hasher()

    init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    deinit {
        FileSystem.close(fd)
        unlink(path)
    }

    public static func == (a: StagedContent, b: StagedContent) -> Bool { a === b }
    public func hash(into h: inout Hasher) { h.combine(ObjectIdentifier(self)) }

    /// Writes `data` at `offset` (a gap becomes zeros).
    public func write(_ data: UnsafeRawBufferPointer, at offset: UInt64) throws(LayerError) {
        guard !data.isEmpty else { return }
        var done = 0
        while done < data.count {
            let (n, e) = FileSystem.retrying {
                pwrite(fd, data.baseAddress! + done, data.count - done, off_t(offset) + off_t(done))
            }
            if n < 0 { throw .system("pwrite", errno: e, path: path) }
            done += n
        }
        if offset == size, let hasher { hasher.update(data) } else { hasher = nil }
        size = max(size, offset + UInt64(data.count))
    }

    /// Cuts or extends the file to `newSize` bytes.
    public func truncate(to newSize: UInt64) throws(LayerError) {
        try FileSystem.truncate(fd, to: newSize, path: path)
        if newSize == 0 {
            hasher = SHA256.Hasher()
        } else if newSize != size {
            hasher = nil
        }
        size = newSize
    }

    /// Reads into `buffer` at `offset`; returns the byte count (0 at or past the end).
    public func read(offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws(LayerError) -> Int {
        guard offset < size, buffer.count > 0 else { return 0 }
        let count = Int(min(UInt64(buffer.count), size - offset))
        var done = 0
        while done < count {
            let (n, e) = FileSystem.retrying { pread(fd, buffer.baseAddress! + done, count - done, off_t(offset) + off_t(done)) }
            if n < 0 { throw .system("pread", errno: e, path: path) }
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// The whole content (for a small file, committed inline).
    public func readAll() throws(LayerError) -> [UInt8] {
        try FileSystem.preadAll(fd, count: Int(size), offset: 0, path: path)
    }

    /// The content's SHA-256: the running hash if the file was only appended to, else read again.
    /// (The running hash is consumed: later appends continue from a fresh read.)
    func digest() throws(LayerError) -> Digest {
        if let hasher {
            let digest = hasher.finalize()
            self.hasher = nil  // finalized; the next commit hashes the file
            return digest
        }
        let hasher = SHA256.Hasher()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        var offset: UInt64 = 0
        while offset < size {
            let n = try read(offset: offset, into: buffer)
            hasher.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            if n == 0 { throw LayerError(.io, "the staging file is shorter than written", path: path, errno: EIO) }
            offset += UInt64(n)
        }
        return hasher.finalize()
    }

    /// Makes `target` a copy of the current content: a reflink clone (btrfs: no data copied),
    /// else a copy. `target` is created (mode 0444) and synced.
    func copy(to target: String) throws(LayerError) {
        let out = try FileSystem.open(target, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode: 0o444)
        do throws(LayerError) {
            try Self.copyContent(from: fd, to: out, size: size, path: target)
            try FileSystem.sync(out, path: target)
        } catch {
            FileSystem.close(out)
            unlink(target)
            throw error
        }
        FileSystem.close(out)
    }

    /// `size` bytes of `source` into the empty `target`: FICLONE (a reflink: btrfs, XFS), else
    /// read and write in 1 MiB pieces.
    static func copyContent(from source: Int32, to target: Int32, size: UInt64, path: String) throws(LayerError) {
        guard size > 0 else { return }
        let ficlone: UInt = 0x4004_9409  // _IOW(0x94, 9, int)
        if ioctl(target, ficlone, source) == 0 { return }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        var copied: UInt64 = 0
        while copied < size {
            let want = Int(min(UInt64(buffer.count), size - copied))
            let (n, e) = FileSystem.retrying { pread(source, buffer.baseAddress!, want, off_t(copied)) }
            if n < 0 { throw .system("pread", errno: e, path: path) }
            if n == 0 { throw LayerError(.io, "the source is shorter than \(size) bytes", path: path, errno: EIO) }
            try FileSystem.writeAll(target, UnsafeRawBufferPointer(rebasing: buffer[0..<n]), path: path)
            copied += UInt64(n)
        }
    }
}

extension Store {
    static func stagingPath(_ store: String) -> String { store + "/metadata/staging" }

    /// A new, empty staging file for a large file being written (see `StagedContent`); with
    /// `info`, a copy of that file version's content (a reflink clone of its blob on btrfs).
    public func stage(from info: NodeInfo? = nil) throws(LayerError) -> StagedContent {
        guard accessMode == .readWrite else { throw LayerError(.readOnly, "the store is open read-only", store: path) }
        let directory = Store.stagingPath(path)
        if !FileSystem.exists(directory) { try FileSystem.makeDirectory(directory, mode: 0o700) }
        let file = directory + "/" + Store.randomUUID()
        let fd = try FileSystem.open(file, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode: 0o600)
        let staged = StagedContent(fd: fd, path: file)
        if let info {
            let content = try openContent(info)
            if let source = content.blobDescriptor {
                try StagedContent.copyContent(from: source, to: fd, size: content.size, path: file)
                try staged.adopt(size: content.size)
            } else {
                let bytes = try content.read(offset: 0, count: Int(content.size))
                let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 16)
                defer { copy.deallocate() }
                copy.copyBytes(from: bytes)
                try staged.write(UnsafeRawBufferPointer(rebasing: copy[0..<bytes.count]), at: 0)
            }
        }
        return staged
    }

    /// Removes staging files left by a writer that did not close (they are never committed data).
    static func removeLeftoverStaging(_ path: String) {
        let directory = Store.stagingPath(path)
        guard let names = try? FileSystem.listDirectory(directory) else { return }
        for name in names { unlink(directory + "/" + name) }
    }

    /// The blob for `staged`: its digest, with `objects/` holding a durable copy.
    func storeStaged(_ staged: StagedContent) throws(LayerError) -> Digest {
        let digest = try staged.digest()
        let target = objects.path(of: digest)
        if FileSystem.exists(target) { return digest }
        let directory = StorePath.parent(ofFilesystemPath: target)
        let created = !FileSystem.exists(directory)
        try FileSystem.makeDirectory(directory)
        if created { try FileSystem.syncDirectory(objects.root) }
        let temporary = target + ".tmp-\(getpid())"
        try staged.copy(to: temporary)
        do { try FileSystem.rename(temporary, target) } catch {
            unlink(temporary)
            throw error
        }
        try FileSystem.syncDirectory(directory)
        return digest
    }
}

extension StagedContent {
    /// The file already holds `size` bytes (cloned in): no running hash.
    func adopt(size newSize: UInt64) throws(LayerError) {
        let actual = try FileSystem.size(fd, path: path)
        guard actual == newSize else {
            throw LayerError(.io, "copied \(actual) of \(newSize) bytes into the staging file", path: path, errno: EIO)
        }
        size = newSize
        hasher = nil
    }
}
