import LayerCore
import LayerIndex
import Logging
import SystemPackage

/// The one place where errors become the errno a FUSE reply carries.
///
/// - `LayerError`: its `posixErrno` (`.notFound` and `.outOfRange` → ENOENT, `.readOnly` → EROFS...);
///   `.corrupt` and `.io` (EIO) are logged, since they mean damage or a failing disk.
/// - `Errno` (swift-system), thrown by the adapter itself: as is.
/// - Anything else is a bug or an unexpected failure: EIO, logged, never a different errno by accident.
enum ErrorMapping {
    static func errno(for error: any Error, operation: StaticString, logger: Logger) -> Int32 {
        switch error {
        case let error as LayerError:
            let code = error.posixErrno
            if code == EIO_ {
                logger.error("\(operation): \(error)")
            } else {
                logger.trace("\(operation): \(error)")
            }
            return code
        case let error as Errno:
            return error.rawValue
        case let error as SimilarityError:
            logger.debug("\(operation): \(error)")
            switch error.kind {
            case .unavailable, .locked: return Errno.resourceTemporarilyUnavailable.rawValue
            case .invalidQuery: return Errno.invalidArgument.rawValue
            case .io: return EIO_
            }
        default:
            logger.error("\(operation): unexpected error \(String(describing: error)); returning EIO")
            return EIO_
        }
    }

    static let EIO_: Int32 = Errno.ioError.rawValue
}
