import ArgumentParser
import LayerCore

/// `layerfs show STORE --at T | --seq N [PATH]`: one path as it was.
struct ShowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Show a path as it was at a time or right after an event.",
        discussion: """
            Give exactly one of --at <time> (the state after the last event at or before that time) or \
            --seq <n> (the state right after event n; 0 is the genesis event, an empty tree).

            A directory is listed like `ls -l`: kind and mode, owner uid, group gid, size, modification \
            time (UTC), name, and `-> target` for symlinks. A file's content is written to standard \
            output as is (binary safe: redirect it). A symlink prints its target.

            --at takes any accepted time form; a time before the store's first event is an error:
            \(HelpText.acceptedTimeForms)

            EXAMPLES:
              layerfs show /srv/layer --seq 12
              layerfs show /srv/layer --seq 12 /etc/hosts
              layerfs show /srv/layer --at 2026-11-21T09:11:38Z /etc
              layerfs show /srv/layer --at @1763716298 /etc/hosts > hosts.then
              layerfs show /srv/layer --at '2026-11-21 09:11+01:00' /
            """)

    @Argument(help: ArgumentHelp("The store.", valueName: "store"))
    var store: String

    @Argument(help: ArgumentHelp("The path inside the store.", valueName: "path"))
    var path: String = "/"

    @OptionGroup var state: StateSelection

    @OptionGroup var global: GlobalOptions

    func run() throws {
        try global.run { context in
            if let at = state.at { _ = try TimeArgument.parse(at, option: "--at") }  // before opening
            let path = try during(.arguments) { () throws(LayerError) in try StorePath.normalize(self.path) }
            let store = try StoreAccess.open(self.store, mode: .readOnly, logger: context.logger)
            let seq = try state.resolve(in: store)
            let out = context.output
            try during(.operation) { () throws(LayerError) in
                let info = try store.stat(path, at: seq)
                switch info.kind {
                case .file:
                    out.write(try store.read(info))
                case .symlink:
                    out.line(Describe.text(try store.readLink(info)))
                case .directory:
                    for line in try ShowCommand.listing(store, path, at: seq) { out.line(line) }
                }
            }
        }
    }

    /// `ls -l`-style lines, columns aligned.
    static func listing(_ store: Store, _ path: String, at seq: UInt64) throws(LayerError) -> [String] {
        let entries = try store.list(path, at: seq)
        var rows: [(mode: String, uid: String, gid: String, size: String, mtime: String, name: String)] = []
        for entry in entries {
            var name = Describe.text(entry.name)
            if entry.info.kind == .symlink { name += " -> " + Describe.text(try store.readLink(entry.info)) }
            rows.append(
                (Describe.modeString(entry.info.kind, entry.info.mode), String(entry.info.uid), String(entry.info.gid),
                 String(entry.info.size), entry.info.mtime.canonical, name))
        }
        let uidWidth = rows.map(\.uid.count).max() ?? 0
        let gidWidth = rows.map(\.gid.count).max() ?? 0
        let sizeWidth = rows.map(\.size.count).max() ?? 0
        func right(_ s: String, _ width: Int) -> String { String(repeating: " ", count: max(0, width - s.count)) + s }
        return rows.map { r in
            "\(r.mode) \(right(r.uid, uidWidth)) \(right(r.gid, gidWidth)) \(right(r.size, sizeWidth)) \(r.mtime) \(r.name)"
        }
    }
}
