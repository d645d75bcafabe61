/// One line of `blocks.jsonl`: block `number` seals events `first...last` of the log.
///
/// Canonical JSON exactly like events (docs/FORMAT.md, "Blocks"): keys in the order
/// block, first, last, count, root, prev, time, hash; `hash` is the SHA-256 of the line without it.
/// A signed header adds `key` and `sig` after `hash` (FORMAT.md §8.7): the Ed25519 signature of
/// `signedMessage`, which covers every other member through the line up to `hash`.
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
    /// Set when the header is signed: who signed (key id) and the signature.
    public var signature: BlockSignature?

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

    /// Computes the hash into `header.hash` and returns the (unsigned) line with its newline.
    public static func seal(_ header: inout BlockHeader) -> [UInt8] {
        header.hash = SHA256.hash(canonicalBytes(header))
        header.signature = nil
        return header.line
    }

    /// The header's line in blocks.jsonl, with its newline: the canonical members, `hash`, and the
    /// signature's `key` and `sig` when signed.
    public var line: [UInt8] {
        var bytes = unsignedLine
        if let signature {
            bytes.removeLast()
            bytes.append(contentsOf: #","key":""#.utf8)
            signature.keyID.appendHex(to: &bytes)
            bytes.append(contentsOf: #"","sig":""#.utf8)
            appendHex(signature.bytes, to: &bytes)
            bytes.append(contentsOf: "\"}".utf8)
        }
        bytes.append(UInt8(ascii: "\n"))
        return bytes
    }

    /// The line up to and including `hash`, without newline: what a signature signs (after the prefix).
    var unsignedLine: [UInt8] {
        var bytes = BlockHeader.canonicalBytes(self)
        bytes.removeLast()
        bytes.append(contentsOf: #","hash":""#.utf8)
        hash.appendHex(to: &bytes)
        bytes.append(contentsOf: "\"}".utf8)
        return bytes
    }

    /// The domain-separation prefix of a block signature (FORMAT.md §8.7).
    public static let signaturePrefix = "layerfs-block-signature/1\n"

    /// The bytes an Ed25519 signature of this header signs: the prefix, the store id and a
    /// newline, then the header's line up to and including `hash` (no `key`, no `sig`, no
    /// newline). The store id binds the signature to one store: a block header does not name it.
    public func signedMessage(storeID: String) -> [UInt8] {
        Array(BlockHeader.signaturePrefix.utf8) + Array(storeID.utf8) + [UInt8(ascii: "\n")] + unsignedLine
    }

    /// Signs the (sealed) header of a block of store `storeID` with `key`.
    public mutating func sign(with key: Ed25519.PrivateKey, storeID: String) throws(LayerError) {
        signature = BlockSignature(keyID: key.publicKey.id, bytes: try key.sign(signedMessage(storeID: storeID)))
    }

    /// What a set of trusted public keys says about this header's signature, as a block of `storeID`.
    public func signatureCheck(trusting keys: [Ed25519.PublicKey], storeID: String) -> SignatureCheck {
        guard let signature else { return .unsigned }
        guard let key = keys.first(where: { $0.id == signature.keyID }) else { return .unknownKey(signature.keyID) }
        return key.isValidSignature(signature.bytes, of: signedMessage(storeID: storeID)) ? .valid(signature.keyID) : .invalid(signature.keyID)
    }

    public enum SignatureCheck: Equatable, Sendable, CustomStringConvertible {
        case valid(Digest), unsigned, unknownKey(Digest), invalid(Digest)
        public var description: String {
            switch self {
            case .valid(let id): return "signed by key \(id.hex.prefix(16))…"
            case .unsigned: return "not signed"
            case .unknownKey(let id): return "signed by key \(id.hex.prefix(16))…, which is not a trusted key"
            case .invalid(let id): return "signature by key \(id.hex.prefix(16))… does not verify"
            }
        }
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
            var signature: BlockSignature?
            if p.expect(UInt8(ascii: ",")) {
                guard let k = p.string(), String(decoding: k, as: UTF8.self) == "key", p.expect(UInt8(ascii: ":")),
                    let keyID = p.digest(), p.expect(UInt8(ascii: ",")),
                    let s = p.string(), String(decoding: s, as: UTF8.self) == "sig", p.expect(UInt8(ascii: ":")),
                    let sig = p.string(), let bytes = parseHex(sig), bytes.count == 64
                else { return false }
                signature = BlockSignature(keyID: keyID, bytes: bytes)
            }
            guard p.expect(UInt8(ascii: "}")), p.atEnd else { return false }
            let first = values["first"] as! UInt64, last = values["last"] as! UInt64
            guard last >= first, values["count"] as! UInt64 == last - first + 1 else { return false }
            header = BlockHeader(
                number: values["block"] as! UInt64, first: first, last: last, merkleRoot: values["root"] as! Digest,
                previousHash: values["prev"] as! Digest, time: values["time"] as! Timestamp, hash: values["hash"] as! Digest)
            header?.signature = signature
            return true
        }
        guard parsed, let header else { return .failure(.malformed("not a block header")) }
        let computed = SHA256.hash(canonicalBytes(header))
        guard computed == header.hash else { return .failure(.hashMismatch(computed: computed)) }
        var expected = header.line
        expected.removeLast()
        guard expected == line else { return .failure(.nonCanonical) }
        return .success(header)
    }
}

/// An Ed25519 signature of a block header and the id of the key that made it (FORMAT.md §8.7).
public struct BlockSignature: Hashable, Sendable {
    /// SHA-256 of the signer's 32-byte raw public key.
    public var keyID: Digest
    /// The 64-byte signature.
    public var bytes: [UInt8]

    public init(keyID: Digest, bytes: [UInt8]) {
        self.keyID = keyID
        self.bytes = bytes
    }
}

/// Lowercase hex digits to bytes; nil for odd length or any other character.
func parseHex(_ text: some Collection<UInt8>) -> [UInt8]? {
    guard text.count % 2 == 0 else { return nil }
    var out = [UInt8]()
    out.reserveCapacity(text.count / 2)
    var high: UInt8?
    for c in text {
        let v: UInt8
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): v = c - 48
        case UInt8(ascii: "a")...UInt8(ascii: "f"): v = c - 87
        default: return nil
        }
        if let h = high { out.append(h << 4 | v); high = nil } else { high = v }
    }
    return out
}

/// Appends bytes as lowercase hex.
func appendHex(_ bytes: [UInt8], to out: inout [UInt8]) {
    let digits = Array("0123456789abcdef".utf8)
    for b in bytes {
        out.append(digits[Int(b >> 4)])
        out.append(digits[Int(b & 0xf)])
    }
}
