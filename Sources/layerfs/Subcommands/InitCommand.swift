import ArgumentParser
import LayerCore

/// `layerfs init STORE`: creates an empty store.
struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create a new, empty store.",
        discussion: """
            STORE must not exist, or be an empty directory. When its parent is on btrfs, the store is \
            created as a btrfs subvolume, so that every sealed block also gets a read-only snapshot \
            under STORE/.snapshots/ (what `btrfs send -p` streams to replicas). Anywhere else the store \
            is a plain directory: blocks are then logical only (headers with Merkle roots, no snapshots), \
            and everything else works the same.

            The new store holds one event, the genesis event (sequence number 0), which names the \
            store's id and the log format. The id is printed.

            EXAMPLES:
              layerfs init /srv/layer
              layerfs init ./test-store

            Exits 73 if STORE exists and is not an empty directory, or cannot be created.
            """)

    @Argument(help: ArgumentHelp("Where to create the store.", valueName: "store"))
    var store: String

    @OptionGroup var global: GlobalOptions

    func run() throws {
        try global.run { context in
            let id = try StoreAccess.create(store, logger: context.logger)
            let path = StoreAccess.absolute(store)
            let opened = try StoreAccess.open(path, mode: .readOnly, logger: context.logger)
            let out = context.output
            out.line("created store \(id)")
            out.line("  path   \(Describe.text(path))")
            if opened.isBtrfsSubvolume {
                out.line("  kind   btrfs subvolume: each sealed block gets a read-only snapshot in .snapshots/")
            } else {
                out.line("  kind   plain directory (not btrfs): blocks are logical only (no snapshots)")
            }
        }
    }
}
