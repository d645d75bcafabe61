import ArgumentParser
import LayerCore

#if canImport(Glibc)
import Glibc
#endif

/// `layerfs receive REPLICA`: applies a replication stream to a replica, verifying every block.
struct ReceiveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "receive",
        abstract: "Apply a stream from `layerfs send` to a replica, verifying every block first.",
        discussion: """
            Reads a layerfs-stream/1 stream from standard input (or --input) into REPLICA, a directory \
            on btrfs (created if missing, mode 0700). Before a block is received, its header must \
            extend the replica's chain (same store, the next number, the previous block's hash); after \
            `btrfs receive`, the snapshot must be a read-only subvolume whose whole log verifies, whose \
            last block is the announced header and whose earlier blocks are the replica's own. Only \
            then is the block accepted (REPLICA/current_block names it). A block that fails is deleted \
            and the receive stops; blocks accepted before it stay.

            Refused, with the replica untouched: a stream of another store, a block that does not \
            extend the chain (a fork), damaged or tampered data, and a stream that starts past the \
            replica's last block (the message says which block to send from). Blocks the replica \
            already holds are checked and skipped, so resending is harmless. An interrupted stream \
            leaves the blocks accepted so far; send again from the next one.

            With --pubkey (repeatable), every new block must be signed by one of those keys (FORMAT.md \
            §8.7), or it is refused before any of its data is applied.

            --print-head prints the replica's last block as `<n> <hash>` (`0 -` when it has none), for \
            scripts such as mount-helpers/layerfs-replicate. Mount a replica with \
            `layerfs mount --replica REPLICA DIR`; verify, log, show and status accept a replica too.

            Needs root (btrfs receive) and btrfs-progs.

            EXAMPLES:
              layerfs send /srv/layer | layerfs receive /backup/layer
              ssh primary layerfs send /srv/layer --from 7 | layerfs receive /srv/replica
              layerfs receive --print-head /srv/replica
            """)

    @Argument(help: ArgumentHelp("The replica directory (on btrfs).", valueName: "replica"))
    var replica: String

    @Option(name: [.short, .long], help: ArgumentHelp("Read the stream from this file instead of standard input.", valueName: "file"))
    var input: String?

    @Flag(help: "Print the replica's last accepted block (`<n> <hash>`, or `0 -`) and exit.")
    var printHead = false

    @OptionGroup var keys: TrustedKeyOptions

    @OptionGroup var global: GlobalOptions

    func run() throws {
        try global.run { context in
            let replica = StoreAccess.absolute(self.replica)
            if printHead {
                let head = FileSystem_exists(replica) ? try during(.openingStore) { () throws(LayerError) in try Replica.head(replica) } : nil
                if let head, let block = head.block, let hash = head.hash {
                    context.output.line("\(block) \(hash.hex)")
                } else {
                    context.output.line("0 -")
                }
                return
            }
            signal(SIGPIPE, SIG_IGN)
            let fd: Int32
            if let input {
                fd = open(input, O_RDONLY | O_CLOEXEC)
                guard fd >= 0 else { throw CLIError("\(Describe.text(input)): \(String(cString: strerror(errno)))", status: .noInput) }
            } else {
                guard isatty(STDIN_FILENO) == 0 else {
                    throw CLIError("standard input is a terminal: pipe a stream from `layerfs send` into this, or use --input", status: .usage)
                }
                fd = STDIN_FILENO
            }
            defer { if input != nil { close(fd) } }
            let bar = ProgressBar.onTerminal("receiving")
            var options = Replica.ReceiveOptions(logger: context.logger)
            options.trustedKeys = try keys.load()
            options.progress = { block, bytes in bar?.spin("block \(block): \(shortSize(bytes))") }
            let out = context.output
            options.accepted = { block, skipped in
                bar?.finish()
                StandardError.line(
                    skipped
                        ? "layerfs: block \(block.number) already held, skipped"
                        : "layerfs: accepted block \(block.number): events \(block.first)...\(block.last), hash \(block.hash.hex)")
            }
            let report = try during(.operation) { () throws(LayerError) in try Replica.receive(into: replica, from: fd, options: options) }
            bar?.finish()
            if let block = report.head?.block {
                out.line(
                    "replica \(Describe.text(replica)) holds blocks 1...\(block) of store \(report.storeID)"
                        + (report.accepted.isEmpty ? " (up to date: nothing new)" : " (\(Describe.plural(report.accepted.count, "block")) accepted)"))
            } else {
                out.line("replica \(Describe.text(replica)) holds no blocks yet")
            }
        }
    }
}

private func FileSystem_exists(_ path: String) -> Bool { access(path, F_OK) == 0 }
