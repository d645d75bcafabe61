/// A change to the present tree, as a filesystem or the CLI asks for it. `Store.commit` turns it
/// into exactly one event (or none, when it would change nothing).
public enum Change: Sendable, Hashable {
    /// Create a regular file or replace its content. `mode` nil keeps the existing mode (0644 for new files).
    case write(path: String, content: [UInt8], mode: UInt32? = nil)
    /// Like `write`, with the content in a staging file (`Store.stage`): large files written
    /// through the mount. The staging file stays usable (the blob is a copy of it).
    case writeStaged(path: String, content: StagedContent, mode: UInt32? = nil)
    /// Cut or extend a file to `size` bytes (zeros when extended).
    case truncate(path: String, size: UInt64)
    case mkdir(path: String, mode: UInt32 = 0o755)
    case rmdir(path: String)
    case unlink(path: String)
    case rename(from: String, to: String)
    case symlink(path: String, target: String)
    case chmod(path: String, mode: UInt32)
    /// nil leaves that id unchanged.
    case chown(path: String, owner: UInt32?, group: UInt32?)
    case setModificationTime(path: String, mtime: Timestamp)

    public var path: String {
        switch self {
        case .write(let p, _, _), .writeStaged(let p, _, _), .truncate(let p, _), .mkdir(let p, _), .rmdir(let p), .unlink(let p),
            .rename(let p, _), .symlink(let p, _), .chmod(let p, _), .chown(let p, _, _),
            .setModificationTime(let p, _):
            return p
        }
    }
}

/// When blocks are sealed. Defaults: every 1000 events, every hour (if anything is unsealed),
/// and when the store is closed.
public struct SealPolicy: Sendable, Hashable {
    public var everyEvents: UInt64?
    public var everySeconds: Double?
    public var onClose: Bool

    public init(everyEvents: UInt64? = 1000, everySeconds: Double? = 3600, onClose: Bool = true) {
        self.everyEvents = everyEvents
        self.everySeconds = everySeconds
        self.onClose = onClose
    }

    /// Seal only when asked (`Store.seal()`): for tools and tests.
    public static let manual = SealPolicy(everyEvents: nil, everySeconds: nil, onClose: false)
}
