import ArgumentParser
import LayerCore

#if canImport(Glibc)
import Glibc
#endif

/// `layerfs prove STORE --seq N`: prints the Merkle inclusion proof of event N in its block.
struct ProveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prove",
        abstract: "Print a Merkle inclusion proof of one event in its block.",
        discussion: """
            The proof (docs/FORMAT.md §8.8) is one line of JSON holding the event's own line of \
            events.jsonl, its block's line of blocks.jsonl (with the block's signature when the store \
            signs its blocks), and the RFC 6962 audit path from the event's hash to the block's \
            Merkle root. `layerfs verify-proof` checks it offline, without the store. The same proof is \
            the extended attribute user.layerfs.proof of that version's file in a mount's views.

            The event must be sealed in a block (exit 66 otherwise: seal first). STORE may be a replica.

            EXAMPLES:
              layerfs prove /srv/layer --seq 42 > event-42.proof
              layerfs verify-proof event-42.proof --pubkey /etc/layerfs/keys/edge-1.pub
            """)

    @Argument(help: ArgumentHelp("The store or replica.", valueName: "store"))
    var store: String

    @Option(help: ArgumentHelp("The event's sequence number.", valueName: "n"))
    var seq: UInt64

    @Option(name: [.short, .long], help: ArgumentHelp("Write the proof to this file instead of standard output.", valueName: "file"))
    var output: String?

    @OptionGroup var global: GlobalOptions

    func run() throws {
        try global.run { context in
            let store = try StoreAccess.open(self.store, mode: .readOnly, logger: context.quietStoreLogger)
            let proof: InclusionProof
            do throws(LayerError) { proof = try store.inclusionProof(seq: seq) } catch {
                throw CLIError(Describe.error(error), status: error.code == .notFound || error.code == .outOfRange ? .noInput : ExitStatus.of(error, during: .operation))
            }
            if let output {
                try OutputFile.write(output, proof.encoded, mode: 0o644, exclusive: false)
            } else {
                context.output.write(proof.encoded)
            }
        }
    }
}

/// `layerfs verify-proof PROOF [--pubkey KEY]...`: checks an inclusion proof offline.
struct VerifyProofCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify-proof",
        abstract: "Check an inclusion proof offline.",
        discussion: """
            Checks that the proof is in canonical form; that its event line is a valid event whose hash \
            is the SHA-256 of its own canonical bytes, with the proof's sequence number; that its block \
            line is a valid block header that holds that event at the proof's index and size; and that \
            the audit path leads from the event's hash to the header's Merkle root.

            With --pubkey (repeatable), the block must also carry a valid signature by one of those \
            keys, made for the proof's store: only then is the proof authentic. Without --pubkey the \
            proof is only consistent, and the output says so. With --store, the block must also be \
            that store's (or replica's) block of the same number, hash for hash.

            Prints what the proof establishes and exits 0, or prints why it is rejected and exits 65. \
            PROOF "-" reads standard input.

            EXAMPLES:
              layerfs verify-proof event-42.proof --pubkey edge-1.pub
              getfattr --only-values -n user.layerfs.proof /mnt/layer/@time/latest/etc/hostname | layerfs verify-proof -
            """)

    @Argument(help: ArgumentHelp("The proof file, or - for standard input.", valueName: "proof"))
    var proof: String

    @OptionGroup var keys: TrustedKeyOptions

    @Option(help: ArgumentHelp("Also check the block against this store's or replica's chain.", valueName: "store"))
    var store: String?

    @OptionGroup var global: GlobalOptions

    func run() throws {
        try global.run { context in
            let trusted = try keys.load()
            let bytes = try readInput(proof)
            let rejected = { (why: String) in CLIError("proof rejected: \(why)", status: .dataError) }
            let decoded: InclusionProof
            switch InclusionProof.decode(bytes) {
            case .success(let p): decoded = p
            case .failure(let problem): throw rejected(problem.description)
            }
            let verified: InclusionProof.Verified
            switch decoded.verify(trustedKeys: trusted) {
            case .success(let v): verified = v
            case .failure(let problem): throw rejected(problem.description)
            }
            if let store {
                let opened = try StoreAccess.open(store, mode: .readOnly, logger: context.quietStoreLogger)
                guard opened.storeID == decoded.storeID else {
                    throw rejected("the proof is of store \(decoded.storeID), \(Describe.text(store)) is store \(opened.storeID)")
                }
                let blocks = opened.blocks
                let number = Int(verified.block.number)
                guard number <= blocks.count else {
                    throw rejected("\(Describe.text(store)) has no block \(number) (it holds \(blocks.count))")
                }
                guard blocks[number - 1].hash == verified.block.hash else {
                    throw rejected("block \(number) of the proof has hash \(verified.block.hash.hex), but \(Describe.text(store))'s has \(blocks[number - 1].hash.hex)")
                }
            }
            let out = context.output
            let event = verified.event
            let what = [event.operation.rawValue, event.path.map { Describe.text($0) }].compactMap { $0 }.joined(separator: " ")
            out.line("event      \(event.seq) (\(what) at \(event.time.canonical)), hash \(event.hash.hex)")
            out.line("block      \(verified.block.number) of store \(decoded.storeID): events \(verified.block.first)...\(verified.block.last), root \(verified.block.merkleRoot.hex)")
            out.line("path       \(decoded.path.count) hashes, index \(decoded.index) of \(decoded.size): leads to the block's root")
            if let id = verified.signedBy {
                out.line("signature  valid, by trusted key \(id.hex)")
            } else if let signature = verified.block.signature {
                out.line("signature  present (key \(signature.keyID.hex)) but not checked: give --pubkey to authenticate the proof")
            } else {
                out.line("signature  none: the proof is consistent, not authenticated")
            }
            if let store { out.line("store      block \(verified.block.number) is \(Describe.text(store))'s own") }
            out.line("OK")
        }
    }

    private func readInput(_ path: String) throws(CLIError) -> [UInt8] {
        let fd = path == "-" ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw CLIError("\(Describe.text(path)): \(String(cString: strerror(errno)))", status: .noInput) }
        defer { if path != "-" { close(fd) } }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw CLIError("\(Describe.text(path)): \(String(cString: strerror(errno)))", status: .ioError)
            }
            if n == 0 { break }
            bytes += buffer[0..<n]
            guard bytes.count <= InclusionProof.maximumSize else {
                throw CLIError("proof rejected: \(Describe.text(path)) is larger than \(InclusionProof.maximumSize) bytes", status: .dataError)
            }
        }
        return bytes
    }
}
