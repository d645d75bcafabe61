import ArgumentParser
import LayerCore

/// `layerfs status STORE`: counts, sizes, blocks, snapshots and the writer.
struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show a store's figures: events, blocks, sizes, snapshots, writer.",
        discussion: """
            Opens the store read-only (which verifies the log like `layerfs verify`, without the \
            snapshot checks), so it works while a mount or another writer holds the store. Shows the \
            store's id and path, the number of events and the head's sequence number and hash, the \
            blocks (count, last block's range), how many events are not yet sealed, the sizes of \
            events.jsonl, blocks.jsonl and objects/ (bytes and blob count), whether the store is a \
            btrfs subvolume (and how many snapshots it has) or a plain directory whose blocks are \
            logical only, who holds the writer lock, and what the open noticed (torn tail, unclean \
            shutdown).

            EXAMPLES:
              layerfs status /srv/layer
            """)

    @Argument(help: ArgumentHelp("The store.", valueName: "store"))
    var store: String

    @OptionGroup var global: GlobalOptions

    func run() throws {
        try global.run { context in
            let store = try StoreAccess.open(self.store, mode: .readOnly, logger: context.quietStoreLogger)
            let s = store.status()
            let out = context.output
            out.line("store      \(Describe.text(s.path))")
            out.line("id         \(s.storeID)")
            out.line("events     \(s.eventCount) (head is event \(s.headSequence))")
            out.line("head hash  \(s.headHash.hex)")
            if let last = s.blocks.last {
                out.line("blocks     \(s.blocks.count) (last: block \(last.number), events \(last.first)...\(last.last), sealed \(last.time.canonical))")
            } else {
                out.line("blocks     none")
            }
            out.line("unsealed   \(Describe.plural(s.unsealedCount, "event"))")
            out.line("sizes      events.jsonl \(Describe.size(s.eventsBytes))")
            out.line("           blocks.jsonl \(Describe.size(s.blocksBytes))")
            out.line("           objects/ \(Describe.size(s.objectBytes)) in \(Describe.plural(s.objectCount, "blob"))")
            if s.isBtrfsSubvolume {
                out.line("btrfs      subvolume with \(Describe.plural(s.snapshots.count, "snapshot")) in .snapshots/")
            } else {
                out.line("btrfs      not btrfs: blocks are logical only (no snapshots)")
            }
            switch s.writer {
            case .none: out.line("writer     none")
            case .held(let holder): out.line("writer     held by \(Describe.text(holder))")
            case .uncleanlyClosed(let holder):
                out.line("writer     none (the last writer did not close cleanly: \(Describe.text(holder)))")
            }
            if s.openNotes.isEmpty {
                out.line("notes      none")
            } else {
                for (i, note) in s.openNotes.enumerated() {
                    out.line((i == 0 ? "notes      " : "           ") + Describe.text(note))
                }
            }
        }
    }
}
