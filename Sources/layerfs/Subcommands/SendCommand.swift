import ArgumentParser
import LayerCore

#if canImport(Glibc)
import Glibc
#endif

/// `layerfs send STORE`: writes block snapshots as a replication stream.
struct SendCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "send",
        abstract: "Write blocks as a replication stream, for `layerfs receive` on a replica.",
        discussion: """
            Writes the read-only snapshots of blocks N...M of a btrfs store to standard output (or \
            --output) as a layerfs-stream/1 stream (docs/FORMAT.md §12): a header naming the store and \
            the blocks, then for each block its header line and the output of `btrfs send` — in full \
            for block 1 (or with --full), otherwise as an increment on the previous block's snapshot \
            (`btrfs send -p`), which the replica must already hold.

            The store may be mounted meanwhile: only sealed, read-only snapshots are read. A range \
            that starts after the last block gives a stream with no blocks, which the receiver uses to \
            check that it is up to date. Needs root (btrfs send) and btrfs-progs.

            To keep a replica in step over ssh, use mount-helpers/layerfs-replicate, which asks the \
            replica for its last block and sends from the next one.

            EXAMPLES:
              layerfs send /srv/layer | layerfs receive /backup/layer
              layerfs send /srv/layer --from 5 | ssh backup layerfs receive /srv/replica
              layerfs send /srv/layer --from 3 --to 3 --output block3.lfs
            """)

    @Argument(help: ArgumentHelp("The store (a btrfs subvolume).", valueName: "store"))
    var store: String

    @Option(help: ArgumentHelp("The first block to send (default 1).", valueName: "n"))
    var from: UInt64 = 1

    @Option(help: ArgumentHelp("The last block to send (default: the last block).", valueName: "n"))
    var to: UInt64?

    @Flag(help: "Send the first block in full instead of as an increment on the block before it.")
    var full = false

    @Option(name: [.short, .long], help: ArgumentHelp("Write the stream to this file instead of standard output.", valueName: "file"))
    var output: String?

    @OptionGroup var global: GlobalOptions

    func run() throws {
        try global.run { context in
            signal(SIGPIPE, SIG_IGN)  // a receiver that stops reading gives EPIPE, reported below
            let fd: Int32
            if let output {
                fd = open(output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
                guard fd >= 0 else {
                    throw CLIError("\(Describe.text(output)): \(String(cString: strerror(errno)))", status: .cannotCreate)
                }
            } else {
                guard isatty(STDOUT_FILENO) == 0 else {
                    throw CLIError("refusing to write a binary stream to a terminal: pipe it into `layerfs receive` or use --output", status: .usage)
                }
                fd = STDOUT_FILENO
            }
            defer { if output != nil { close(fd) } }
            let store = try StoreAccess.open(self.store, mode: .readOnly, logger: context.quietStoreLogger)
            let header = try during(.arguments) { () throws(LayerError) in
                try ReplicationSender.plan(store: store, from: from, to: to, full: full)
            }
            let bar = ProgressBar.onTerminal("sending")
            defer { bar?.finish() }
            try during(.operation) { () throws(LayerError) in
                try ReplicationSender.send(store: store, header: header, to: fd) { p in
                    bar?.spin("block \(p.block) (\(p.block - p.first + 1) of \(p.last - p.first + 1)): \(shortSize(p.totalBytes))")
                }
                if output != nil { try? FileSystem_fsync(fd) }
            }
            bar?.finish()
            let what =
                header.last < header.first
                ? "no blocks (block \(header.last) is the last)"
                : "block\(header.last > header.first ? "s" : "") \(header.first)\(header.last > header.first ? "...\(header.last)" : "")"
                    + (header.base == 0 ? " (the first in full)" : " (an increment on block \(header.base))")
            StandardError.line("layerfs: sent \(what) of store \(store.storeID)")
        }
    }
}

private func FileSystem_fsync(_ fd: Int32) throws {
    if fsync(fd) != 0 { throw CLIError("fsync: \(String(cString: strerror(errno)))", status: .ioError) }
}
