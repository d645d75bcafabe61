import ArgumentParser
import LayerCore

#if canImport(Glibc)
import Glibc
#endif

/// `layerfs seal STORE`: seals the pending events into a block now.
struct SealCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "seal",
        abstract: "Seal every event not yet in a block into a new block, now.",
        discussion: """
            A block covers a contiguous range of events: its header (appended to blocks.jsonl) holds \
            its number, the first and last event, their count, the Merkle root of their hashes, the \
            previous block's hash and the time. On btrfs, sealing also takes a read-only snapshot of \
            the store at .snapshots/block-<n>-<first 12 hex digits of the header hash>.

            Prints the new block's header, or "nothing to seal" when every event is already in a \
            block. The store must not be open for writing elsewhere (exit 75 names the holder); a \
            mounted store seals by its own policy and at unmount.

            EXAMPLES:
              layerfs seal /srv/layer
            """)

    @Argument(help: ArgumentHelp("The store.", valueName: "store"))
    var store: String

    @OptionGroup var global: GlobalOptions

    func run() throws {
        try global.run { context in
            // Manual policy: closing must not seal a second time.
            let store = try StoreAccess.open(self.store, mode: .readWrite, sealPolicy: .manual, logger: context.logger)
            let header = try during(.operation) { () throws(LayerError) in try store.seal() }
            try during(.operation) { () throws(LayerError) in try store.close() }
            let out = context.output
            guard let header else {
                let last = store.blocks.last
                out.line(
                    "nothing to seal: all \(store.headSequence + 1) events are in blocks"
                        + (last.map { " (block \($0.number) ends at event \($0.last))" } ?? ""))
                return
            }
            out.line("sealed block \(header.number)")
            out.line("  events       \(header.first)...\(header.last) (\(header.count))")
            out.line("  merkle root  \(header.merkleRoot.hex)")
            out.line("  previous     \(header.previousHash.hex)")
            out.line("  hash         \(header.hash.hex)")
            out.line("  time         \(header.time.canonical)")
            if store.isBtrfsSubvolume {
                let snapshot = store.snapshotPath(of: header)
                var st = stat()
                guard lstat(snapshot, &st) == 0 else {
                    out.flush()
                    throw CLIError(
                        "block \(header.number) is sealed, but its snapshot \(Describe.text(snapshot)) could not be taken (see the error above)",
                        status: .ioError)
                }
                out.line("  snapshot     \(Describe.text(snapshot))")
            } else {
                out.line("  snapshot     none: not btrfs, blocks are logical only")
            }
        }
    }
}
