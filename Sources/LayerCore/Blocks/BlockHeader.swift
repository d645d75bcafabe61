/// One line of `blocks.jsonl`: block `number` seals events `first...last` of the log.
///
/// Canonical JSON exactly like events (docs/FORMAT.md, "Blocks"): keys in the order
/// block, first, last, count, root, prev, time, hash; `hash` is the SHA-256 of the line without it.
public struct BlockHeader: Hashable, Sendable {
    /// 1, 2, 3... Block 1 starts at event 0 (genesis).
    public var number: UInt64
    public var first: UInt64
    public var last: UInt64
    public var count: UInt64 { last - first + 1 }
    /// Merkle root (RFC 6962) of the hashes of events first...last.
    public var merkleRoot: Digest
    /// Hash of block number-1's header; zero for block 1.
    public var previousHash: Digest
    /// When the block was sealed (never earlier than the previous block, nor than its last event).
    public var time: Timestamp
    public var hash: Digest

    public init(number: UInt64, first: UInt64, last: UInt64, merkleRoot: Digest, previousHash: Digest, time: Timestamp, hash: Digest = .zero) {
        self.number = number
        self.first = first
        self.last = last
        self.merkleRoot = merkleRoot
        self.previousHash = previousHash
        self.time = time
        self.hash = hash
    }

    /// `block-<n>-<first 12 hex digits of the header hash>`: the snapshot's name under `.snapshots/`.
    public var snapshotName: String { "block-\(number)-\(hash.hex.prefix(12))" }

    public static func canonicalBytes(_ h: BlockHeader) -> [UInt8] {
        var w = CanonicalWriter(out: [])
        w.int("block", h.number)
        w.int("first", h.first)
        w.int("last", h.last)
        w.int("count", h.count)
        w.digest("root", h.merkleRoot)
        w.digest("prev", h.previousHash)
        w.time("time", h.time)
        w.out.append(UInt8(ascii: "}"))
        return w.out
    }

    /// Computes the hash into `header.hash` and returns the line with its newline.
    public static func seal(_ header: inout BlockHeader) -> [UInt8] {
        var bytes = canonicalBytes(header)
        header.hash = SHA256.hash(bytes)
        bytes.removeLast()
        bytes.append(contentsOf: #","hash":""#.utf8)
        header.hash.appendHex(to: &bytes)
        bytes.append(contentsOf: "\"}\n".utf8)
        return bytes
    }

    /// Decodes one line (without newline), checking canonical form and hash.
    public static func decode(line: [UInt8]) -> Result<BlockHeader, EventCodec.LineProblem> {
        var header: BlockHeader?
        let parsed: Bool = line.withUnsafeBytes { raw in
            var p = StrictJSONParser(bytes: raw)
            guard p.expect(UInt8(ascii: "{")) else { return false }
            var values: [String: Any] = [:]
            let order = ["block", "first", "last", "count", "root", "prev", "time", "hash"]
            for (i, key) in order.enumerated() {
                if i > 0 { guard p.expect(UInt8(ascii: ",")) else { return false } }
                guard let k = p.string(), String(decoding: k, as: UTF8.self) == key, p.expect(UInt8(ascii: ":")) else { return false }
                switch key {
                case "root", "prev", "hash": guard let d = p.digest() else { return false }; values[key] = d
                case "time": guard let t = p.timestamp() else { return false }; values[key] = t
                default: guard let n = p.integer() else { return false }; values[key] = n
                }
            }
            guard p.expect(UInt8(ascii: "}")), p.atEnd else { return false }
            let first = values["first"] as! UInt64, last = values["last"] as! UInt64
            guard last >= first, values["count"] as! UInt64 == last - first + 1 else { return false }
            header = BlockHeader(
                number: values["block"] as! UInt64, first: first, last: last, merkleRoot: values["root"] as! Digest,
                previousHash: values["prev"] as! Digest, time: values["time"] as! Timestamp, hash: values["hash"] as! Digest)
            return true
        }
        guard parsed, let header else { return .failure(.malformed("not a block header")) }
        var check = header
        var expected = seal(&check)
        expected.removeLast()
        guard expected == line else {
            return check.hash == header.hash ? .failure(.nonCanonical) : .failure(.hashMismatch(computed: check.hash))
        }
        return .success(header)
    }
}
