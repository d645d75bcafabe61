import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Log lines for a daemonized mount, which has no terminal: syslog(3), facility daemon, ident
/// `layerfs`. Levels map to syslog priorities (trace and debug → LOG_DEBUG, ...).
public struct SyslogLogHandler: LogHandler {
    public var logLevel: Logger.Level = .warning
    public var metadata: Logger.Metadata = [:]
    let label: String

    private static let opened: Void = { openlog("layerfs", LOG_PID | LOG_NDELAY, LOG_DAEMON) }()

    public init(label: String, level: Logger.Level) {
        self.label = label
        self.logLevel = level
        _ = Self.opened
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let priority: Int32 =
            switch event.level {
            case .trace, .debug: LOG_DEBUG
            case .info: LOG_INFO
            case .notice: LOG_NOTICE
            case .warning: LOG_WARNING
            case .error: LOG_ERR
            case .critical: LOG_CRIT
            }
        var all = metadata
        if let extra = event.metadata { all.merge(extra) { _, new in new } }
        var text = "\(event.level.rawValue): \(event.message)"
        if !all.isEmpty { text += " (" + all.keys.sorted().map { "\($0)=\(all[$0]!)" }.joined(separator: ", ") + ")" }
        text.withCString { pointer in withVaList([pointer]) { vsyslog(priority, "%s", $0) } }
    }
}
