/// A Merkle inclusion proof of one event in its block (FORMAT.md §8.8): the event's own line,
/// the block header's line (with its signature, when signed), and the audit path between them.
/// It is checked offline: nothing but the proof (and, for authenticity, the signer's public key)
/// is needed.
///
/// One line of canonical JSON, keys in this order:
/// `{"proof":"layerfs-proof/1","store":S,"seq":N,"index":I,"size":Z,"path":[H,...],"event":E,"block":B}`
public struct InclusionProof: Hashable, Sendable {
    public static let format = "layerfs-proof/1"

    /// The store id (of the genesis event); signatures bind it.
    public var storeID: String
    public var seq: UInt64
    /// The event's position among the block's events: `seq` − the block's `first`.
    public var index: UInt64
    /// The number of events in the block (its `count`).
    public var size: UInt64
    /// The audit path, nearest sibling first (RFC 6962 §2.1.1).
    public var path: [Digest]
    /// The event's line of events.jsonl, without its newline.
    public var eventLine: [UInt8]
    /// The block's line of blocks.jsonl, without its newline.
    public var blockLine: [UInt8]

    public init(storeID: String, seq: UInt64, index: UInt64, size: UInt64, path: [Digest], eventLine: [UInt8], blockLine: [UInt8]) {
        self.storeID = storeID
        self.seq = seq
        self.index = index
        self.size = size
        self.path = path
        self.eventLine = eventLine
        self.blockLine = blockLine
    }

    /// The canonical line, with its newline.
    public var encoded: [UInt8] {
        var w = CanonicalWriter(out: [])
        w.string("proof", InclusionProof.format)
        w.string("store", storeID)
        w.int("seq", seq)
        w.int("index", index)
        w.int("size", size)
        w.key("path")
        w.out.append(UInt8(ascii: "["))
        for (i, digest) in path.enumerated() {
            if i > 0 { w.out.append(UInt8(ascii: ",")) }
            w.out.append(UInt8(ascii: "\""))
            digest.appendHex(to: &w.out)
            w.out.append(UInt8(ascii: "\""))
        }
        w.out.append(UInt8(ascii: "]"))
        w.stringBytes("event", eventLine)
        w.stringBytes("block", blockLine)
        w.out.append(contentsOf: "}\n".utf8)
        return w.out
    }

    /// The most bytes a proof may have: an event line is at most a few hundred KiB (64 KiB of
    /// inline content, escaped), and a path at most 64 hashes.
    public static let maximumSize = 1 << 20

    /// Parses a proof: exactly its canonical line (one trailing newline allowed). Checks form only:
    /// `verify` checks what it says.
    public static func decode(_ bytes: [UInt8]) -> Result<InclusionProof, ProofProblem> {
        guard bytes.count <= maximumSize else { return .failure(.malformed("larger than \(maximumSize) bytes")) }
        var body = bytes[...]
        if body.last == UInt8(ascii: "\n") { body = body.dropLast() }
        var proof: InclusionProof?
        let parsed: Bool = Array(body).withUnsafeBytes { raw in
            var p = StrictJSONParser(bytes: raw)
            func key(_ name: String, first: Bool = false) -> Bool {
                if !first { guard p.expect(UInt8(ascii: ",")) else { return false } }
                guard let k = p.string(), String(decoding: k, as: UTF8.self) == name else { return false }
                return p.expect(UInt8(ascii: ":"))
            }
            guard p.expect(UInt8(ascii: "{")), key("proof", first: true), let format = p.string(),
                String(decoding: format, as: UTF8.self) == InclusionProof.format,
                key("store"), let store = p.string(),
                key("seq"), let seq = p.integer(),
                key("index"), let index = p.integer(),
                key("size"), let size = p.integer(),
                key("path"), p.expect(UInt8(ascii: "["))
            else { return false }
            var path: [Digest] = []
            if !p.expect(UInt8(ascii: "]")) {
                repeat {
                    guard path.count < 64, let d = p.digest() else { return false }
                    path.append(d)
                } while p.expect(UInt8(ascii: ","))
                guard p.expect(UInt8(ascii: "]")) else { return false }
            }
            guard key("event"), let event = p.string(), key("block"), let block = p.string(),
                p.expect(UInt8(ascii: "}")), p.atEnd
            else { return false }
            proof = InclusionProof(
                storeID: String(decoding: store, as: UTF8.self), seq: seq, index: index, size: size, path: path,
                eventLine: event, blockLine: block)
            return true
        }
        guard parsed, let proof else {
            return .failure(.malformed("not a \(InclusionProof.format) proof (expected what `layerfs prove` prints)"))
        }
        guard proof.encoded.dropLast() == body else { return .failure(.malformed("not in canonical form")) }
        return .success(proof)
    }

    /// What a proof establishes once checked.
    public struct Verified: Sendable {
        public var event: Event
        public var block: BlockHeader
        /// The trusted key that signed the block; nil when no key was given.
        public var signedBy: Digest?
    }

    /// Checks the proof: the event line is a valid event with its own hash and number, the block
    /// line is a valid header, the event lies in the block at `index` of `size`, the audit path
    /// leads from the event's hash to the block's Merkle root, and, when `trustedKeys` is not
    /// empty, one of them signed the block as a block of `storeID`.
    public func verify(trustedKeys: [Ed25519.PublicKey]) -> Result<Verified, ProofProblem> {
        let event: Event
        switch EventCodec.decode(line: eventLine) {
        case .success(let e): event = e
        case .failure(let problem): return .failure(.badEvent("the event line does not verify: \(problem)"))
        }
        guard event.seq == seq else { return .failure(.badEvent("the event line is event \(event.seq), not \(seq)")) }
        if event.operation == .genesis, event.storeID != storeID {
            return .failure(.badEvent("the genesis event names store \(event.storeID ?? "-"), not \(storeID)"))
        }
        let block: BlockHeader
        switch BlockHeader.decode(line: blockLine) {
        case .success(let b): block = b
        case .failure(let problem): return .failure(.badBlock("the block line does not verify: \(problem)"))
        }
        guard block.first <= seq, seq <= block.last else {
            return .failure(.badBlock("block \(block.number) holds events \(block.first)...\(block.last), not event \(seq)"))
        }
        guard index == seq - block.first else {
            return .failure(.badPath("index \(index) is wrong: event \(seq) is at index \(seq - block.first) of block \(block.number)"))
        }
        guard size == block.count else {
            return .failure(.badPath("size \(size) is wrong: block \(block.number) holds \(block.count) events"))
        }
        guard let root = MerkleTree.root(fromAuditPath: path, leaf: event.hash, index: index, size: size) else {
            return .failure(.badPath("the path has \(path.count) hashes, which no proof of index \(index) in \(size) has"))
        }
        guard root == block.merkleRoot else {
            return .failure(.badPath("the path leads to root \(root.hex), but block \(block.number)'s root is \(block.merkleRoot.hex)"))
        }
        var signedBy: Digest?
        if !trustedKeys.isEmpty {
            switch block.signatureCheck(trusting: trustedKeys, storeID: storeID) {
            case .valid(let id): signedBy = id
            case let other: return .failure(.badSignature("block \(block.number) is \(other)"))
            }
        }
        return .success(Verified(event: event, block: block, signedBy: signedBy))
    }

    public enum ProofProblem: Error, Equatable, Sendable, CustomStringConvertible {
        case malformed(String), badEvent(String), badBlock(String), badPath(String), badSignature(String)
        public var description: String {
            switch self {
            case .malformed(let m), .badEvent(let m), .badBlock(let m), .badPath(let m), .badSignature(let m): return m
            }
        }
    }
}
