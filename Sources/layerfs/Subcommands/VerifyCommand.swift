import ArgumentParser
import LayerCore

/// `layerfs verify STORE`: rechecks the whole store.
struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check every hash, the chain, every blob, every block and the head.",
        discussion: """
            Reads the whole log and checks, for every event: that its line is the canonical encoding of \
            its own fields, that its hash is the SHA-256 of those bytes, that it names the previous \
            event's hash, that sequence numbers count up from 0 and times never go backwards, and that \
            it is a valid change of the tree before it. Every blob in objects/ must hash to its name \
            and have the size its event says; every block in blocks.jsonl must chain to the previous \
            block and carry the Merkle root of its events; metadata/current_hash must name the last \
            event. On btrfs, every block's read-only snapshot must exist under .snapshots/. A replica \
            (filled by `layerfs receive`) is verified as of its last accepted block.

            The store is opened read-only: verify works while a mount or another writer holds it.

            On success a summary is printed (events, blocks, head hash) ending in OK. On damage it \
            prints `layerfs: verify failed: <message>` naming the first bad event by sequence number \
            (the genesis event, line 1 of events.jsonl, is event 0) and exits 65. What the open noticed \
            without failing (a torn tail after a crash, an unclean shutdown) is printed as warnings.

            EXAMPLES:
              layerfs verify /srv/layer
              layerfs verify /srv/layer && echo intact
            """)

    @Argument(help: ArgumentHelp("The store.", valueName: "store"))
    var store: String

    @OptionGroup var global: GlobalOptions

    func run() throws {
        try global.run { context in
            let store: Store
            do throws(CLIError) {
                store = try StoreAccess.open(
                    self.store, mode: .readOnly, logger: context.quietStoreLogger,
                    progress: ProgressBar.onTerminal("verifying"))
            } catch {
                guard error.status == .dataError else { throw error }
                throw CLIError("verify failed: " + error.message, status: .dataError)
            }
            for note in store.openNotes { StandardError.warning(note) }

            let problems = store.snapshotProblems()
            if let first = problems.first {
                for other in problems.dropFirst() { StandardError.error("verify failed: \(Describe.text(other.description))") }
                throw CLIError(
                    "verify failed: store \(Describe.text(store.path)), \(Describe.text(first.description))"
                        + (problems.count > 1 ? " (and \(problems.count - 1) more, listed above)" : ""),
                    status: .dataError)
            }

            let status = store.status()
            let out = context.output
            out.line("store      \(Describe.text(store.path)) (\(store.storeID))")
            out.line("events     \(status.eventCount) (0...\(status.headSequence)), head hash \(status.headHash.hex)")
            if let last = status.blocks.last {
                out.line("blocks     \(status.blocks.count) (events 0...\(last.last)), \(Describe.plural(status.unsealedCount, "event")) unsealed")
            } else {
                out.line("blocks     none yet, \(Describe.plural(status.unsealedCount, "event")) unsealed")
            }
            if Replica.isReplica(self.store) {
                let last = status.blocks.last?.number ?? 0
                out.line("replica    \(Describe.text(self.store)): read as of its last accepted block, \(last), received in blocks/\(Describe.text(StorePath.name(of: store.path)))")
            } else if store.isBtrfsSubvolume {
                out.line("snapshots  \(status.blocks.count) of \(status.blocks.count) present and read-only")
                let expected = Set(status.blocks.map(\.snapshotName))
                for extra in status.snapshots where !expected.contains(extra) {
                    StandardError.warning(".snapshots/\(Describe.text(extra)) belongs to no block")
                }
            } else {
                out.line("snapshots  none: not btrfs, blocks are logical only")
            }
            if !store.openNotes.isEmpty {
                out.line("warnings   \(store.openNotes.count) (see above)")
            }
            out.line("OK")
        }
    }
}
