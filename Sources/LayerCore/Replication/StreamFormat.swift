/// The replication stream, `layerfs-stream/1` (docs/FORMAT.md §12): what `layerfs send` writes and
/// `layerfs receive` reads. It wraps one `btrfs send` stream per block in just enough framing for the
/// receiver to check, before it runs `btrfs receive` at all, that the stream extends its chain.
///
///     stream   = magic header block* end
///     magic    = "layerfs-stream/1" LF
///     header   = {"store":S,"first":F,"last":L,"base":B,"basehash":H} LF
///     block    = <the block's blocks.jsonl line> LF  chunk* zero  trailer
///     chunk    = length (4 bytes, big-endian, 1 ... 16 MiB)  that many bytes of `btrfs send` output
///     zero     = 00 00 00 00
///     trailer  = {"bytes":N,"sha256":D} LF      N, D: length and SHA-256 of the block's btrfs bytes
///     end      = {"blocks":K} LF                K = L - F + 1
///
/// Every line is canonical JSON (FORMAT.md §5) with exactly these keys in this order, at most
/// `maximumLineLength` bytes. Parsing is strict: anything else is a damaged stream.
public enum ReplicationStream {
    public static let magic: [UInt8] = Array("layerfs-stream/1\n".utf8)
    /// Longer lines are refused before they are parsed (a block header line is about 300 bytes).
    public static let maximumLineLength = 4096
    public static let maximumChunk = 1 << 24

    /// The stream header: which store, which blocks, and what the first block is an increment on.
    public struct Header: Equatable, Sendable {
        public var store: String
        /// The first and last block in the stream; `last` = `first` - 1 for a stream with no blocks.
        public var first: UInt64
        public var last: UInt64
        /// The block the first one is sent as an increment on (`btrfs send -p`), with its header
        /// hash; 0 and 64 zeros when the first block is sent in full.
        public var base: UInt64
        public var baseHash: Digest

        public init(store: String, first: UInt64, last: UInt64, base: UInt64, baseHash: Digest) {
            self.store = store
            self.first = first
            self.last = last
            self.base = base
            self.baseHash = baseHash
        }

        public var blockCount: UInt64 { last + 1 - first }
    }

    public struct Trailer: Equatable, Sendable {
        public var bytes: UInt64
        public var sha256: Digest

        public init(bytes: UInt64, sha256: Digest) {
            self.bytes = bytes
            self.sha256 = sha256
        }
    }

    // MARK: Encoding

    public static func encode(_ h: Header) -> [UInt8] {
        var w = CanonicalWriter(out: [])
        w.string("store", h.store)
        w.int("first", h.first)
        w.int("last", h.last)
        w.int("base", h.base)
        w.digest("basehash", h.baseHash)
        return w.out + Array("}\n".utf8)
    }

    public static func encode(_ t: Trailer) -> [UInt8] {
        var w = CanonicalWriter(out: [])
        w.int("bytes", t.bytes)
        w.digest("sha256", t.sha256)
        return w.out + Array("}\n".utf8)
    }

    public static func encodeEnd(blocks: UInt64) -> [UInt8] {
        var w = CanonicalWriter(out: [])
        w.int("blocks", blocks)
        return w.out + Array("}\n".utf8)
    }

    // MARK: Decoding (lines without their LF)

    public static func decodeHeader(_ line: [UInt8]) -> Header? {
        let header: Header? = line.withUnsafeBytes { raw in
            var p = StrictJSONParser(bytes: raw)
            guard p.expect(UInt8(ascii: "{")),
                key(&p, "store", first: true), let store = p.string(),
                key(&p, "first"), let first = p.integer(),
                key(&p, "last"), let last = p.integer(),
                key(&p, "base"), let base = p.integer(),
                key(&p, "basehash"), let baseHash = p.digest(),
                p.expect(UInt8(ascii: "}")), p.atEnd
            else { return nil }
            guard let id = String(validating: store, as: UTF8.self), isStoreID(id) else { return nil }
            return Header(store: id, first: first, last: last, base: base, baseHash: baseHash)
        }
        guard let header, encode(header).dropLast() == line[...] else { return nil }
        // Blocks count from 1; a stream of blocks F...L has L >= F - 1; only a stream whose first
        // block is sent in full has base 0, and then the base hash is zero; otherwise base = F - 1.
        guard header.first >= 1, header.last >= header.first - 1, header.last - (header.first - 1) <= 1 << 32 else { return nil }
        if header.base == 0 {
            guard header.baseHash == .zero, header.last >= header.first else { return nil }
        } else {
            guard header.base == header.first - 1 else { return nil }
        }
        return header
    }

    public static func decodeTrailer(_ line: [UInt8]) -> Trailer? {
        let trailer: Trailer? = line.withUnsafeBytes { raw in
            var p = StrictJSONParser(bytes: raw)
            guard p.expect(UInt8(ascii: "{")),
                key(&p, "bytes", first: true), let bytes = p.integer(),
                key(&p, "sha256"), let digest = p.digest(),
                p.expect(UInt8(ascii: "}")), p.atEnd
            else { return nil }
            return Trailer(bytes: bytes, sha256: digest)
        }
        guard let trailer, encode(trailer).dropLast() == line[...] else { return nil }
        return trailer
    }

    public static func decodeEnd(_ line: [UInt8]) -> UInt64? {
        let count: UInt64? = line.withUnsafeBytes { raw in
            var p = StrictJSONParser(bytes: raw)
            guard p.expect(UInt8(ascii: "{")), key(&p, "blocks", first: true), let n = p.integer(),
                p.expect(UInt8(ascii: "}")), p.atEnd
            else { return nil }
            return n
        }
        guard let count, encodeEnd(blocks: count).dropLast() == line[...] else { return nil }
        return count
    }

    private static func key(_ p: inout StrictJSONParser, _ name: String, first: Bool = false) -> Bool {
        if !first { guard p.expect(UInt8(ascii: ",")) else { return false } }
        guard let k = p.string(), k.elementsEqual(name.utf8), p.expect(UInt8(ascii: ":")) else { return false }
        return true
    }

    /// A store id as `layerfs init` makes them: a lowercase UUID (8-4-4-4-12 hex digits).
    static func isStoreID(_ s: String) -> Bool {
        let u = Array(s.utf8)
        guard u.count == 36 else { return false }
        for (i, c) in u.enumerated() {
            if [8, 13, 18, 23].contains(i) {
                guard c == UInt8(ascii: "-") else { return false }
            } else {
                guard (c >= 48 && c <= 57) || (c >= 97 && c <= 102) else { return false }
            }
        }
        return true
    }
}
