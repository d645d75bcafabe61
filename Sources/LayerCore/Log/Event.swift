/// The kinds of change the log records. The raw value is the `op` field of the JSON line.
public enum Operation: String, Sendable, CaseIterable {
    /// Event 0 of every store: names the store and the format; changes nothing.
    case genesis
    /// Create a regular file or replace its whole content.
    case write
    /// Cut or extend a closed file; carries the resulting content like `write`.
    case truncate
    case mkdir, rmdir, unlink, rename, symlink, chmod, chown
    /// Set a node's modification time explicitly (utimensat(2)).
    case utimens
}

/// Who made a change: taken from the FUSE request context, or from the CLI process.
public struct Provenance: Hashable, Sendable {
    public var uid: UInt32
    public var gid: UInt32
    public var pid: Int32
    /// The process name (`/proc/<pid>/comm`), at most 64 bytes of UTF-8.
    public var process: String

    public init(uid: UInt32, gid: UInt32, pid: Int32, process: String) {
        self.uid = uid
        self.gid = gid
        self.pid = pid
        self.process = Provenance.sanitize(process)
    }

    /// The calling process itself.
    public static func currentProcess() -> Provenance {
        let pid = getpid()
        return Provenance(uid: getuid(), gid: getgid(), pid: pid, process: processName(pid: pid) ?? "")
    }

    /// The process a thread belongs to (`Tgid:` in `/proc/<tid>/status`); nil if it is gone.
    /// FUSE requests name the calling *thread*; events record the process.
    public static func processID(ofThread tid: Int32) -> Int32? {
        let fd = open("/proc/\(tid)/status", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 512)  // Tgid is on the 4th line
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, 512) }
        guard n > 0 else { return nil }
        for line in buffer[0..<n].split(separator: UInt8(ascii: "\n")) where line.starts(with: Array("Tgid:".utf8)) {
            return Int32(String(decoding: line.dropFirst(5).filter { $0 >= 48 && $0 <= 57 }, as: UTF8.self))
        }
        return nil
    }

    /// Reads `/proc/<pid>/comm` (without its newline); nil if the process is gone.
    public static func processName(pid: Int32) -> String? {
        let fd = open("/proc/\(pid)/comm", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 64)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, 64) }
        guard n > 0 else { return nil }
        var bytes = Array(buffer[0..<n])
        if bytes.last == UInt8(ascii: "\n") { bytes.removeLast() }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func sanitize(_ name: String) -> String {
        // Fast path: printable ASCII up to 64 bytes is kept as it is.
        if name.utf8.count <= 64, name.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7f }) { return name }
        var out = ""
        for scalar in name.unicodeScalars where scalar.value >= 0x20 && scalar.value != 0x7f {
            if out.utf8.count + String(scalar).utf8.count > 64 { break }
            out.unicodeScalars.append(scalar)
        }
        return out
    }
}

/// A file's content as it appears in an event: inline in the line, or a blob in `objects/`.
public enum EventContent: Hashable, Sendable {
    /// Serialized as `"text"` when the bytes are UTF-8 without NUL, else as `"base64"`.
    case inline([UInt8])
    /// The SHA-256 of a blob stored at `objects/<first 2 hex>/<remaining 62 hex>`.
    case object(Digest)
}

/// One line of `events.jsonl`. Which optional fields are present depends on `operation`
/// (docs/FORMAT.md, "Fields by operation"); `EventCodec` enforces it.
public struct Event: Hashable, Sendable {
    public var seq: UInt64
    public var time: Timestamp
    public var operation: Operation
    public var path: String?
    /// `rename`: the new path.
    public var destination: String?
    /// `symlink`: the link's target.
    public var target: String?
    /// Permission bits (07777): `write`, `truncate`, `mkdir`, `chmod`.
    public var mode: UInt32?
    /// `chown`: the new owner and/or group.
    public var owner: UInt32?
    public var group: UInt32?
    /// `utimens`: the modification time set.
    public var mtime: Timestamp?
    /// `write`, `truncate`: the content's length in bytes.
    public var size: UInt64?
    public var content: EventContent?
    /// `genesis`: the store's id and the format name.
    public var storeID: String?
    public var format: String?
    public var provenance: Provenance
    public var previousHash: Digest
    /// SHA-256 of the canonical bytes (EventCodec.canonicalBytes). Zero until sealed by the codec.
    public var hash: Digest

    public init(
        seq: UInt64, time: Timestamp, operation: Operation, path: String? = nil,
        destination: String? = nil, target: String? = nil, mode: UInt32? = nil,
        owner: UInt32? = nil, group: UInt32? = nil, mtime: Timestamp? = nil, size: UInt64? = nil,
        content: EventContent? = nil, storeID: String? = nil, format: String? = nil,
        provenance: Provenance, previousHash: Digest, hash: Digest = .zero
    ) {
        self.seq = seq
        self.time = time
        self.operation = operation
        self.path = path
        self.destination = destination
        self.target = target
        self.mode = mode
        self.owner = owner
        self.group = group
        self.mtime = mtime
        self.size = size
        self.content = content
        self.storeID = storeID
        self.format = format
        self.provenance = provenance
        self.previousHash = previousHash
        self.hash = hash
    }

    /// The format name written in the genesis event.
    public static let formatName = "layerfs-events/1"
}

#if canImport(Glibc)
import Glibc
#endif
