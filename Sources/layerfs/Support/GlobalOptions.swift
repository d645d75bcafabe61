import ArgumentParser
import LayerCore
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// The log levels `--log-level` and `LAYERFS_LOG_LEVEL` accept.
enum LogLevelOption: String, CaseIterable, ExpressibleByArgument {
    case trace, debug, info, notice, warning, error, critical

    var level: Logger.Level { Logger.Level(rawValue: rawValue)! }
}

/// Options every subcommand takes.
struct GlobalOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "How much to log on standard error (default: $LAYERFS_LOG_LEVEL, else warning).",
            valueName: "level"))
    var logLevel: LogLevelOption?

    /// The level chosen: the option, else the environment, else warning.
    var level: Logger.Level {
        if let logLevel { return logLevel.level }
        if let raw = getenv("LAYERFS_LOG_LEVEL").map({ String(cString: $0) }), !raw.isEmpty {
            if let level = LogLevelOption(rawValue: raw.lowercased()) { return level.level }
            StandardError.warning(
                "LAYERFS_LOG_LEVEL=\(Describe.text(raw)) is not a level (\(LogLevelOption.allCases.map(\.rawValue).joined(separator: ", "))); using warning")
        }
        return .warning
    }

    /// Sets up logging, runs a subcommand's body, and turns what it throws into the message on
    /// stderr and the exit code (`ExitStatus`).
    func run(_ body: (CommandContext) throws -> Void) throws {
        let level = self.level
        LoggingSystem.bootstrap { label in
            var handler = StandardErrorLogHandler(label: label)
            handler.logLevel = level
            return handler
        }
        var logger = Logger(label: "layerfs")
        logger.logLevel = level
        let context = CommandContext(logger: logger, output: Output())
        do {
            defer { context.output.flush() }
            try body(context)
        } catch let error as CLIError {
            StandardError.error(error.message)
            throw ExitCode(error.status.rawValue)
        } catch let error as LayerError {
            let failure = CLIError(error, during: .operation)
            StandardError.error(failure.message)
            throw ExitCode(failure.status.rawValue)
        }
    }
}

/// What a subcommand body works with.
struct CommandContext {
    var logger: Logger
    let output: Output

    /// The logger for a store that the command reports on itself (verify, status print the open
    /// notes in their report): at the default level the store's own "note" warnings would only
    /// repeat them, so they are kept back unless the user asked for more than warnings.
    var quietStoreLogger: Logger {
        var copy = logger
        if copy.logLevel >= .warning { copy.logLevel = max(copy.logLevel, .error) }
        return copy
    }
}

/// Log lines on standard error: `layerfs: warning: message (key=value ...)`.
struct StandardErrorLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .warning
    var metadata: Logger.Metadata = [:]

    init(label: String) { self.label = label }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var all = metadata
        if let extra = event.metadata { all.merge(extra) { _, new in new } }
        var text = "layerfs: \(event.level.rawValue): \(event.message)"
        if !all.isEmpty {
            let pairs = all.keys.sorted().map { "\($0)=\(all[$0]!)" }
            text += " (" + pairs.joined(separator: ", ") + ")"
        }
        if logLevel <= .debug { text += " [\(label) \(event.file):\(event.line)]" }
        StandardError.line(Describe.text(text))
    }
}
