#if canImport(Glibc)
import Glibc
#endif

/// The one error type LayerCore throws. It carries a code (what kind of failure), a message for
/// people, and context: the store, the path and the event sequence number involved, when known,
/// plus the underlying cause and where it was raised.
public struct LayerError: Error, CustomStringConvertible, Sendable {
    public enum Code: String, Sendable {
        case notFound, alreadyExists, notDirectory, isDirectory, directoryNotEmpty
        case invalidArgument, invalidPath, reservedName, nameTooLong
        case readOnly, locked, busy, noSpace, io, permission, unsupported
        /// The log, a blob, the head or a block does not verify: tampering or damage.
        case corrupt
        /// A time expression that is not one of the accepted forms.
        case badTime
        /// A time or sequence number outside the log (before the first event, past the head).
        case outOfRange
    }

    public var code: Code
    public var message: String
    public var store: String?
    public var path: String?
    public var sequence: UInt64?
    public var errno: Int32?
    public var file: String
    public var line: Int

    public init(
        _ code: Code, _ message: String, store: String? = nil, path: String? = nil,
        sequence: UInt64? = nil, errno: Int32? = nil, file: String = #fileID, line: Int = #line
    ) {
        self.code = code
        self.message = message
        self.store = store
        self.path = path
        self.sequence = sequence
        self.errno = errno
        self.file = file
        self.line = line
    }

    /// An error for a failed system call, keeping its errno.
    public static func system(
        _ call: String, errno code: Int32, path: String? = nil, store: String? = nil,
        file: String = #fileID, line: Int = #line
    ) -> LayerError {
        let kind: Code
        switch code {
        case ENOENT: kind = .notFound
        case EEXIST: kind = .alreadyExists
        case ENOTDIR: kind = .notDirectory
        case EISDIR: kind = .isDirectory
        case ENOTEMPTY: kind = .directoryNotEmpty
        case ENOSPC, EDQUOT: kind = .noSpace
        case EACCES, EPERM: kind = .permission
        case EROFS: kind = .readOnly
        case EBUSY: kind = .busy
        case ENAMETOOLONG: kind = .nameTooLong
        case EINVAL: kind = .invalidArgument
        default: kind = .io
        }
        let reason = String(cString: strerror(code))
        let target = path.map { " \($0)" } ?? ""
        return LayerError(
            kind, "\(call)\(target): \(reason)", store: store, path: path, errno: code,
            file: file, line: line)
    }

    /// The errno a filesystem adapter should return for this error.
    public var posixErrno: Int32 {
        if let errno { return errno }
        switch code {
        case .notFound, .outOfRange: return ENOENT
        case .alreadyExists: return EEXIST
        case .notDirectory: return ENOTDIR
        case .isDirectory: return EISDIR
        case .directoryNotEmpty: return ENOTEMPTY
        case .invalidArgument, .invalidPath, .badTime: return EINVAL
        case .reservedName, .permission: return EPERM
        case .nameTooLong: return ENAMETOOLONG
        case .readOnly: return EROFS
        case .locked, .busy: return EBUSY
        case .noSpace: return ENOSPC
        case .unsupported: return EOPNOTSUPP
        case .io, .corrupt: return EIO
        }
    }

    public var description: String {
        var parts: [String] = []
        if let store { parts.append("store \(store)") }
        if let sequence, !message.hasPrefix("event \(sequence)") { parts.append("event \(sequence)") }
        if let path, !message.contains(path) { parts.append(path) }
        return parts.isEmpty ? message : "\(parts.joined(separator: ", ")): \(message)"
    }

    /// The same error with the store filled in (if it was not already).
    func inStore(_ store: String) -> LayerError {
        var copy = self
        if copy.store == nil { copy.store = store }
        return copy
    }
}
