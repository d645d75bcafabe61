import ArgumentParser
import LayerCore

/// `layerfs log STORE`: the events, oldest first.
struct LogCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "log",
        abstract: "Show the events of the log, oldest first.",
        discussion: """
            One line per event, fields separated by two spaces:
              <seq>  <time>  <op>  <path>  <details>  by uid <uid> (<process>) pid <pid>
            The time is UTC with nanoseconds. A rename's path reads `/old -> /new`, a symlink's \
            `/link -> target`. The details are what the operation carries: size, mode, owner, \
            group, mtime, and the blob (first 12 hex digits) of content too large to inline. \
            Control characters in paths are shown escaped (\\n, \\u{1B}).

            --json prints the matching lines of events.jsonl exactly as stored (the canonical \
            encoding, hashes included), one per line, for jq or an independent verifier.

            --path keeps the events touching that path or anything below it; a rename is kept when \
            either side is. --since and --until (both inclusive) take any accepted time form:
            \(HelpText.acceptedTimeForms)

            EXAMPLES:
              layerfs log /srv/layer
              layerfs log /srv/layer --path /etc/hosts
              layerfs log /srv/layer --since 2026-11-21 --until '2026-11-21 12:00'
              layerfs log /srv/layer --json | jq -r .op
            """)

    @Argument(help: ArgumentHelp("The store.", valueName: "store"))
    var store: String

    @Option(help: ArgumentHelp("Only events touching this path or anything below it.", valueName: "path"))
    var path: String?

    @Option(help: ArgumentHelp("Only events at or after this time.", valueName: "time"))
    var since: String?

    @Option(help: ArgumentHelp("Only events at or before this time.", valueName: "time"))
    var until: String?

    @Flag(help: "Print the events.jsonl lines themselves (canonical JSON).")
    var json = false

    @OptionGroup var global: GlobalOptions

    func run() throws {
        try global.run { context in
            // Arguments first: a typo is reported without touching the store.
            let since = try self.since.map { text throws(CLIError) in try TimeArgument.parse(text, option: "--since") }
            let until = try self.until.map { text throws(CLIError) in try TimeArgument.parse(text, option: "--until") }
            let filter = try self.path.map { text throws(CLIError) in
                try during(.arguments) { () throws(LayerError) in try StorePath.normalize(text) }
            }

            let store = try StoreAccess.open(self.store, mode: .readOnly, logger: context.logger)
            let head = store.headSequence
            // The range of sequence numbers in [since, until], found by binary search on time.
            var first: UInt64 = 0
            var last: UInt64 = head
            // (Parsed times lie within Timestamp.minimum...maximum, so `- 1` cannot overflow; a time
            // before the genesis event throws, leaving `first` at 0.)
            if let since, let before = try? store.sequence(at: Timestamp(nanoseconds: since.nanoseconds - 1)) {
                first = before + 1
            }
            if let until {
                guard let upTo = try? store.sequence(at: until) else { return }  // before the genesis event
                last = upTo
            }
            guard first <= last else { return }

            let out = context.output
            for seq in first...last {
                let event = try during(.operation) { () throws(LayerError) in try store.event(seq) }
                if let filter, !LogCommand.touches(event, filter) { continue }
                if json {
                    var copy = event
                    out.write(EventCodec.seal(&copy))
                } else {
                    out.line(LogCommand.describe(event, seqWidth: String(last).count))
                }
            }
        }
    }

    /// Whether the event changes `path` or something below it (either side of a rename).
    static func touches(_ event: Event, _ path: String) -> Bool {
        if path == "/" { return true }
        if let p = event.path, StorePath.isSelfOrDescendant(p, of: path) { return true }
        if let to = event.destination, StorePath.isSelfOrDescendant(to, of: path) { return true }
        return false
    }

    /// The human form of one event.
    /// The sequence number is right-aligned to `seqWidth` digits so that the columns line up.
    static func describe(_ event: Event, seqWidth: Int = 0) -> String {
        let op = event.operation.rawValue
        let seq = String(event.seq)
        var parts = [String(repeating: " ", count: max(0, seqWidth - seq.count)) + seq, event.time.canonical, op + String(repeating: " ", count: max(0, 7 - op.count))]
        if let path = event.path { parts.append(Describe.text(path)) }
        var details: [String] = []
        switch event.operation {
        case .genesis:
            if let id = event.storeID { details.append("store \(id)") }
            if let format = event.format { details.append("format \(Describe.text(format))") }
        case .rename:
            if let to = event.destination { parts[parts.count - 1] += " -> " + Describe.text(to) }
        case .symlink:
            if let target = event.target { parts[parts.count - 1] += " -> " + Describe.text(target) }
        case .chown:
            if let owner = event.owner { details.append("owner \(owner)") }
            if let group = event.group { details.append("group \(group)") }
        case .utimens:
            if let mtime = event.mtime { details.append("mtime \(mtime.canonical)") }
        default:
            break
        }
        if let size = event.size { details.append("size \(size)") }
        if let mode = event.mode { details.append("mode \(Describe.octal(mode))") }
        if case .object(let digest)? = event.content { details.append("object \(digest.hex.prefix(12))") }
        let who = event.provenance
        details.append("by uid \(who.uid) (\(Describe.text(who.process))) pid \(who.pid)")
        return (parts + details).joined(separator: "  ")
    }
}
