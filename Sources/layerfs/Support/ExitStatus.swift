import LayerCore

/// The process exit codes of `layerfs`, after sysexits(3). Every failure class has its own code so
/// scripts can tell "the store is damaged" from "someone else is writing" from "you typed it wrong".
enum ExitStatus: Int32, CaseIterable {
    case success = 0
    /// An operation failed: a path not found, an invalid change, an import that skipped entries.
    case failure = 1
    /// EX_USAGE: bad arguments or options (also a time expression that does not parse).
    case usage = 64
    /// EX_DATAERR: the store failed verification (`LayerError.Code.corrupt`).
    case dataError = 65
    /// EX_NOINPUT: no such store (or no such directory to import).
    case noInput = 66
    /// EX_CANTCREAT: `init` cannot create the store (it exists and is not empty, no parent...).
    case cannotCreate = 73
    /// EX_IOERR: a system call failed (EIO, ENOSPC...).
    case ioError = 74
    /// EX_TEMPFAIL: another process holds the store open for writing; try again later.
    case locked = 75

    /// The table shown in `layerfs --help`.
    static let table = """
        EXIT CODES:
          0   success
          1   an operation failed (path not found, invalid change, skipped entries)
          64  usage error (bad arguments, a time expression that does not parse)
          65  the store failed verification (damaged or tampered with)
          66  no such store (or no such directory to import)
          73  cannot create the store (init on an existing, non-empty directory)
          74  I/O error
          75  the store is locked by another writer (the message names it)
        """
}

/// What the command was doing when an error happened: the same LayerError code means different
/// things at different stages (`.notFound` opening a store is "no such store", 66; while showing a
/// path it is an ordinary failure, 1).
enum Stage {
    case openingStore
    case creatingStore
    /// Reading what the user pointed at outside the store (the directory to import).
    case readingInput
    /// Interpreting arguments (a path or time typed on the command line).
    case arguments
    case operation
}

extension ExitStatus {
    /// The one mapping from LayerCore errors to exit codes.
    static func of(_ error: LayerError, during stage: Stage) -> ExitStatus {
        switch error.code {
        case .corrupt: return .dataError
        case .locked: return .locked
        case .badTime: return .usage
        case .io, .noSpace: return .ioError
        default: break
        }
        switch stage {
        case .openingStore:
            switch error.code {
            case .notFound, .notDirectory, .permission: return .noInput
            default: return .failure
            }
        case .creatingStore:
            return .cannotCreate
        case .readingInput:
            switch error.code {
            case .notFound, .notDirectory, .permission: return .noInput
            default: return .failure
            }
        case .arguments:
            switch error.code {
            case .invalidPath, .invalidArgument, .nameTooLong, .reservedName: return .usage
            default: return .failure
            }
        case .operation:
            return .failure
        }
    }
}

/// An error the CLI reports and exits with: printed as `layerfs: <message>` on stderr.
struct CLIError: Error {
    var message: String
    var status: ExitStatus

    init(_ message: String, status: ExitStatus) {
        self.message = message
        self.status = status
    }

    /// A LayerCore error, with its context (store, event, path) spelled out once.
    init(_ error: LayerError, during stage: Stage, prefix: String = "") {
        self.message = prefix + Describe.error(error)
        self.status = ExitStatus.of(error, during: stage)
    }
}

/// Runs `body`, turning a LayerError it throws into a CLIError for `stage`.
func during<T>(_ stage: Stage, _ body: () throws(LayerError) -> T) throws(CLIError) -> T {
    do {
        return try body()
    } catch {
        throw CLIError(error, during: stage)
    }
}
