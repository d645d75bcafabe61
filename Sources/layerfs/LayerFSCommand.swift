import ArgumentParser

/// `layerfs`: the command-line tool. Each subcommand lives in `Subcommands/` and hands the work to
/// LayerCore; `Support/` holds what they share (opening stores, exit codes, progress, time options).
@main
struct LayerFSCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "layerfs",
        abstract: "A filesystem whose store is a hash-chained, append-only event log.",
        discussion: """
            A store is a directory holding events.jsonl, the SHA-256 hash-chained log of every change \
            ever made: the single source of truth. Past states are reconstructed from it. On btrfs the \
            store is a subvolume and every sealed block also gets a read-only snapshot.

            EXAMPLES:
              layerfs init /srv/layer                    create a store
              layerfs import /srv/layer ./config         make its present match ./config
              layerfs log /srv/layer --path /etc         what happened to /etc, and who
              layerfs show /srv/layer --at 2026-11-21T09:00Z /etc/hosts
              layerfs verify /srv/layer                  recheck every hash
              layerfs seal /srv/layer                    seal pending events into a block
              layerfs status /srv/layer                  counts, sizes, snapshots, writer

            Errors are printed on standard error as `layerfs: <message>`, naming the store, the event \
            and the path involved. Log lines go to standard error too; choose how many with \
            --log-level or LAYERFS_LOG_LEVEL (trace, debug, info, notice, warning, error, critical; \
            default warning).

            \(ExitStatus.table)
            """,
        subcommands: [
            InitCommand.self, ImportCommand.self, VerifyCommand.self, LogCommand.self, SealCommand.self,
            StatusCommand.self, ShowCommand.self, MountCommand.self, SimilarCommand.self, ReindexCommand.self,
            SendCommand.self, ReceiveCommand.self, KeygenCommand.self, SigningKeyCommand.self, ProveCommand.self,
            VerifyProofCommand.self,
        ])
}
