import LayerCore
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Opening and creating stores with errors mapped to exit codes (66 no such store, 75 locked,
/// 65 damaged, 73 cannot create).
enum StoreAccess {
    static func open(
        _ path: String, mode: Store.AccessMode, sealPolicy: SealPolicy = .manual, logger: Logger,
        progress: ProgressBar? = nil
    ) throws(CLIError) -> Store {
        var options = Store.Options(sealPolicy: sealPolicy, logger: logger)
        if let progress {
            options.progress = { done, total in
                progress.update(total == 0 ? 1 : Double(done) / Double(total), detail: "\(shortSize(done)) of \(shortSize(total))")
            }
        }
        defer { progress?.finish() }
        if Replica.isReplica(path) {
            // Read-only commands read a replica as its last accepted block.
            guard mode == .readOnly else {
                throw CLIError(
                    "\(Describe.text(path)) is a replica: it changes only by `layerfs receive` (mount it with --replica)",
                    status: .failure)
            }
            return try openReplica(path, logger: logger, options: options)
        }
        do {
            return try Store.open(path, mode: mode, options: options)
        } catch where error.code == .locked {
            // The lock's error names the lock file; say which store, and who holds it.
            throw CLIError("store \(Describe.text(path)): \(Describe.text(error.message))", status: .locked)
        } catch {
            throw CLIError(error, during: .openingStore)
        }
    }

    /// A replica (filled by `layerfs receive`), as a read-only store of its last accepted block.
    static func openReplica(_ path: String, logger: Logger, options: Store.Options? = nil) throws(CLIError) -> Store {
        var options = options ?? Store.Options(logger: logger)
        options.logger = logger
        do {
            return try Replica.open(path, options: options)
        } catch {
            throw CLIError(error, during: .openingStore)
        }
    }

    static func create(_ path: String, logger: Logger) throws(CLIError) -> String {
        try during(.creatingStore) { () throws(LayerError) in
            try Store.create(at: path, by: .currentProcess(), logger: logger)
        }
    }

    /// The absolute, symlink-free form of a path that exists (the path itself otherwise).
    static func absolute(_ path: String) -> String {
        guard let resolved = realpath(path, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}
