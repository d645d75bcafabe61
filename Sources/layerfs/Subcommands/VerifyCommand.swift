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

            With --pubkey (repeatable: old and new keys during a rotation), every block must also carry \
            a valid Ed25519 signature by one of those keys, made for this store (FORMAT.md §8.7); the \
            first block that is unsigned, signed by another key, or whose signature does not verify is \
            named and verify exits 65. This catches a history rewritten with every hash recomputed, \
            which the hashes alone cannot. Events after the last block are not covered by any \
            signature: verify says how many.

            The store is opened read-only: verify works while a mount or another writer holds it.

            On success a summary is printed (events, blocks, head hash) ending in OK. On damage it \
            prints `layerfs: verify failed: <message>` naming the first bad event by sequence number \
            (the genesis event, line 1 of events.jsonl, is event 0) and exits 65. What the open noticed \
            without failing (a torn tail after a crash, an unclean shutdown) is printed as warnings.

            EXAMPLES:
              layerfs verify /srv/layer
              layerfs verify /srv/layer && echo intact
              layerfs verify /srv/layer --pubkey /etc/layerfs/keys/edge-1.pub
            """)

    @Argument(help: ArgumentHelp("The store.", valueName: "store"))
    var store: String

    @OptionGroup var keys: TrustedKeyOptions

    @OptionGroup var global: GlobalOptions

    func run() throws {
        try global.run { context in
            let trusted = try keys.load()
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
            if !trusted.isEmpty {
                for block in status.blocks {
                    let check = block.signatureCheck(trusting: trusted, storeID: store.storeID)
                    guard case .valid = check else {
                        throw CLIError(
                            "verify failed: store \(Describe.text(store.path)), block \(block.number) (events \(block.first)...\(block.last)): \(check)",
                            status: .dataError)
                    }
                }
                let ids = Set(status.blocks.compactMap { $0.signature?.keyID.hex })
                out.line(
                    "signatures \(status.blocks.count) of \(status.blocks.count) blocks signed by trusted keys (\(ids.sorted().map { String($0.prefix(16)) + "…" }.joined(separator: ", ")))"
                        + (status.unsealedCount > 0 ? "; \(Describe.plural(status.unsealedCount, "unsealed event")) not yet covered" : ""))
            }
            if !store.openNotes.isEmpty {
                out.line("warnings   \(store.openNotes.count) (see above)")
            }
            out.line("OK")
        }
    }
}
